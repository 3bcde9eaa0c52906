"""Secure file display names and properties."""

from __future__ import annotations

import pytest

from securefiles.common.errors import InvalidArgument
from securefiles.storage.domain.names import validate_display_name, validate_properties


@pytest.mark.parametrize("name", [
    "signing.pem",
    "a",
    "..hidden",
    "...",
    ".env",
    "release key 2024.p12",
    "Zertifikat für Ärzte.pfx",
    "証明書.pem",
    "ключ-prod",
    "emoji 🔐.key",
    "a" * 255,
    "é" * 127 + "a",  # 255 bytes of UTF-8
    "🔐" * 63 + "abc",
    "tab-free name with (parens) & [brackets]",
    "vso[task].p12",
    "a::b.pem",
    "# #vso[ spaced",
    "securefiles-downloads.json",
    ".securefiles.json",
])
def test_ordinary_names_are_accepted_unchanged(name):
    assert validate_display_name(name) == name


@pytest.mark.parametrize("name", [
    "",
    "a" * 256,
    "é" * 128,  # 128 characters, but 256 bytes: no file system would take it as a file name
    "証" * 86,
    "dir/file.pem",
    "/abs",
    "trailing/",
    "back\\slash",
    "nul\x00byte",
    "bell\x07",
    "unit\x1fsep",
    "del\x7f",
    "new\nline",
    "carriage\rreturn",
    "tab\tinside",
    "\x85next-line",
    ".",
    "..",
    " leading",
    "trailing ",
    "trailing\t",
    "\u00a0nbsp-leading",
    "nbsp-trailing\u3000",
    " ",
    "zero\u200bwidth",
    "rtl\u202eoverride",
    "bom\ufeff",
    "soft\u00adhyphen",
    "line\u2028separator",
    "para\u2029separator",
    "lone\ud800surrogate",
])
def test_bad_names_are_invalid_name(name):
    with pytest.raises(InvalidArgument) as err:
        validate_display_name(name)
    assert err.value.reason == "INVALID_NAME"


@pytest.mark.parametrize(("name", "why"), [
    ("x##vso[task.setvariable variable=INJ]pwn.bin", "##vso["),
    ("x##VSO[task.complete result=Failed]", "##vso["),
    ("##vso[task.uploadfile]passwd", "##vso["),
    ("a##[add-mask]b", "##["),
    ("##[error]looks like an error", "##["),
    ("::error title=INJ::pwn", "starts with '::'"),
    ("::stop-commands::resume", "starts with '::'"),
    (".securefiles-downloads.json", "the agent's own files"),
    (".SecureFiles-anything", "the agent's own files"),
])
def test_names_that_are_ci_commands_or_agent_files_are_refused(name, why):
    """The agent escapes every name it prints, but a downloaded file's name reaches other tools'
    logs too (and a reserved name would be the agent's own bookkeeping)."""
    with pytest.raises(InvalidArgument) as err:
        validate_display_name(name)
    assert err.value.reason == "INVALID_NAME"
    assert why in err.value.message


def test_property_limits_are_inclusive():
    props = {f"k{i}": "v" * 1024 for i in range(63)}
    props["k" * 128] = ""
    assert validate_properties(props) == props
    assert validate_properties({}) == {}


def test_too_many_properties():
    with pytest.raises(InvalidArgument) as err:
        validate_properties({f"k{i}": "v" for i in range(65)})
    assert err.value.reason == "TOO_MANY_PROPERTIES"


@pytest.mark.parametrize("props", [
    {"": "empty key"},
    {"k" * 129: "v"},
    {"k": "v" * 1025},
    {"new\nline": "v"},
    {"nul\x00": "v"},
    {"del\x7f": "v"},
])
def test_invalid_property(props):
    with pytest.raises(InvalidArgument) as err:
        validate_properties(props)
    assert err.value.reason == "INVALID_PROPERTY"


def test_property_values_may_hold_any_text():
    props = {"notes": "line one\nline two\ttabbed", "owner": "Zoë"}
    assert validate_properties(props) == props
