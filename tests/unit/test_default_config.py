"""`securefiles up` takes the machine-wide default client config only when it is free or its own."""

from __future__ import annotations

import os

from securefiles.cli.default_config import point_default_config


def test_a_free_default_config_is_pointed_here(tmp_path) -> None:
    ours, link = tmp_path / "ours" / "client.toml", tmp_path / "xdg" / "securefiles" / "client.toml"
    said = point_default_config(ours, link)
    assert os.readlink(link) == str(ours)
    assert said.endswith("now points here")


def test_our_own_link_stays(tmp_path) -> None:
    ours, link = tmp_path / "client.toml", tmp_path / "xdg" / "client.toml"
    ours.write_text("")
    link.parent.mkdir()
    link.symlink_to(ours)
    assert point_default_config(ours, link).endswith("already points here")
    assert os.readlink(link) == str(ours)


def test_another_checkouts_instance_is_left_alone(tmp_path) -> None:
    ours, theirs, link = tmp_path / "ours.toml", tmp_path / "theirs.toml", tmp_path / "xdg" / "client.toml"
    theirs.write_text("someone else's")
    link.parent.mkdir()
    link.symlink_to(theirs)
    said = point_default_config(ours, link)
    assert os.readlink(link) == str(theirs)
    assert "left alone" in said and str(theirs) in said and f"export SECUREFILES_CONFIG={ours}" in said


def test_a_config_file_of_its_own_is_left_alone(tmp_path) -> None:
    ours, link = tmp_path / "ours.toml", tmp_path / "client.toml"
    link.write_text("hand-written")
    said = point_default_config(ours, link)
    assert link.read_text() == "hand-written" and not link.is_symlink()
    assert "left alone" in said


def test_a_link_to_a_removed_checkout_is_taken_over(tmp_path) -> None:
    ours, gone, link = tmp_path / "ours.toml", tmp_path / "deleted-clone" / "client.toml", tmp_path / "client.toml"
    link.symlink_to(gone)
    said = point_default_config(ours, link)
    assert os.readlink(link) == str(ours)
    assert "no longer exists" in said
