"""The typed metadata conversion never fails a read: stored rows from older versions may lack a
field, carry None, a double for an integer, or a time that does not parse."""

from __future__ import annotations

from datetime import UTC, datetime

from securefiles.storage.api.typed_metadata import set_typed_metadata
from securefiles.storage.v1 import storage_pb2


def test_odd_values_are_left_out_and_the_rest_kept() -> None:
    message = storage_pb2.SecureFile()
    set_typed_metadata(message, {
        "type": "x509", "subject": None, "issuer": 7, "public_key_size": 256.0, "count": 2**40,
        "not_after": "2027-01-02T03:04:05Z", "not_before": "yesterday", "contains_private_key": "yes",
        "certificates": [{"serial": "01", "chain_index": True}, "not a dict"], "truncated": ["certificates", 3],
    })
    x509 = message.x509
    assert (x509.subject, x509.issuer, x509.public_key_size, x509.count) == ("", "", 256, 0)
    assert x509.not_after.ToDatetime(UTC) == datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert not x509.HasField("not_before") and not x509.contains_private_key
    assert [c.serial for c in x509.certificates] == ["01"] and not x509.certificates[0].HasField("chain_index")
    assert list(x509.truncated) == ["certificates"]


def test_a_type_without_a_message_leaves_the_oneof_unset() -> None:
    for metadata in ({"type": "name"}, {"type": "metadata"}, {}, {"type": None}):
        message = storage_pb2.SecureFile()
        set_typed_metadata(message, metadata)
        assert message.WhichOneof("file_metadata") is None and message.display_name == ""
