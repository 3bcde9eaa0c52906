"""Per-file metadata caps: lists, total size, and the "truncated" marker."""

from __future__ import annotations

from securefiles.storage.domain.metadata_caps import (
    MAX_LIST_ITEMS,
    MAX_METADATA_BYTES,
    cap_metadata,
    json_size,
)


def test_ordinary_metadata_is_unchanged() -> None:
    metadata = {"type": "x509", "subject": "CN=a", "count": 2, "certificates": [{"subject": "CN=a"}] * 2}
    assert cap_metadata(metadata) == metadata


def test_long_lists_are_cut_and_named() -> None:
    capped = cap_metadata({"type": "android_keystore", "entry_count": 500, "aliases": [str(i) for i in range(500)],
                           "entries": [{"alias": str(i)} for i in range(500)]})
    assert capped["aliases"] == [str(i) for i in range(MAX_LIST_ITEMS)]
    assert len(capped["entries"]) == MAX_LIST_ITEMS
    assert capped["entry_count"] == 500
    assert capped["truncated"] == ["aliases", "entries"]


def test_the_total_is_bounded_by_shortening_the_largest_list() -> None:
    capped = cap_metadata({"type": "x509", "certificates": [{"subject": "CN=" + "s" * 1024}] * 100,
                           "aliases": ["short"] * 10})
    assert json_size(capped) <= MAX_METADATA_BYTES
    assert 0 < len(capped["certificates"]) < 100 and capped["aliases"] == ["short"] * 10
    assert capped["truncated"] == ["certificates"]


def test_nested_lists_count_for_their_field() -> None:
    capped = cap_metadata({"type": "pkcs12", "additional_certificate_details": [{"names": list(range(1000))}]})
    assert len(capped["additional_certificate_details"][0]["names"]) == MAX_LIST_ITEMS
    assert capped["truncated"] == ["additional_certificate_details"]


def test_without_lists_to_shorten_only_plain_facts_stay() -> None:
    capped = cap_metadata({"type": "unknown", "blob": {f"k{i}": "v" * 1000 for i in range(100)}})
    assert capped == {"type": "unknown", "truncated": ["blob"]}


def test_capping_twice_changes_nothing() -> None:
    once = cap_metadata({"type": "x", "aliases": ["a" * 300] * 1000})
    assert cap_metadata(once) == once
