"""Reading update masks (common/update_mask.py): `*`, fields, and map sub-paths."""

from __future__ import annotations

import pytest

from securefiles.common.errors import InvalidArgument
from securefiles.common.update_mask import Mask, read_mask

UPDATABLE = ("display_name", "properties")


def test_star_fields_and_sub_paths() -> None:
    assert read_mask(["*"], UPDATABLE, ("properties",)) == Mask(frozenset(UPDATABLE))
    assert read_mask(["display_name"], UPDATABLE, ("properties",)) == Mask(frozenset({"display_name"}))
    mask = read_mask(["properties.k2", "properties.`a.b`", "display_name"], UPDATABLE, ("properties",))
    assert mask.fields == {"display_name"} and mask.map_keys == {"properties": {"k2", "a.b"}}


@pytest.mark.parametrize("paths", [["*", "display_name"], ["size_bytes"], ["properties", "properties.k"],
                                   ["properties."], ["properties.a b"], ["properties.``"], ["display_name.x"]])
def test_bad_masks(paths: list[str]) -> None:
    with pytest.raises(InvalidArgument) as raised:
        read_mask(paths, UPDATABLE, ("properties",))
    assert raised.value.reason == "INVALID_UPDATE_MASK"


def test_sub_paths_only_for_map_fields() -> None:
    with pytest.raises(InvalidArgument):
        read_mask(["properties.k"], UPDATABLE)
