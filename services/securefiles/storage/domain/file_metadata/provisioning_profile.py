"""Apple provisioning profiles: a CMS SignedData (DER or BER) whose content is a property list.

The signature is not verified: the profile is only described. The CMS wrapper is unwrapped with
the bounded DER reader; the plist is size-checked before `plistlib` sees it. Only named keys are
read, with type checks, so cyclic or unexpected plist values are never walked.
"""

from __future__ import annotations

import plistlib
from datetime import datetime
from typing import Any

from . import der
from .model import MAX_CERTIFICATES, FileMetadata, ParseError, as_utc, clean_text, rfc3339
from .x509_info import distinguished_name, load_certificate, serial_hex

SIGNED_DATA = "1.2.840.113549.1.7.2"
MAX_PLIST_BYTES = 2 * 1024 * 1024
MAX_LIST_ITEMS = 100


def looks_like_signed_data(data: bytes) -> bool:
    try:
        top = der.expect_sequence(der.read_tlv(data))
        first = der.read_tlv(data, top.content_start, top.content_end)
        return der.read_oid(data, first) == SIGNED_DATA
    except der.DerError:
        return False


def encapsulated_content(data: bytes, max_bytes: int = MAX_PLIST_BYTES) -> bytes:
    """ContentInfo → [0] SignedData → encapContentInfo → [0] OCTET STRING (primitive or chunked)."""
    top = der.expect_sequence(der.read_tlv(data))
    parts = der.child_list(data, top, max_count=2)
    if len(parts) != 2 or der.read_oid(data, parts[0]) != SIGNED_DATA:
        raise ParseError("not a CMS signed-data file")
    signed_data = der.expect_sequence(der.explicit(data, parts[1], 0))
    fields = der.children(data, signed_data, max_count=6)
    version = next(fields, None)
    digests = next(fields, None)
    content_info = next(fields, None)
    if version is None or digests is None or content_info is None:
        raise der.DerError("unexpected structure")
    der.read_integer(data, version)
    der.expect(digests, der.SET, constructed=True)
    inner = der.child_list(data, der.expect_sequence(content_info), max_count=2)
    if not inner:
        raise der.DerError("unexpected structure")
    der.read_oid(data, inner[0])
    if len(inner) == 1:
        raise ParseError("the profile has no embedded content")
    try:
        return der.read_octets(data, der.explicit(data, inner[1], 0), max_bytes)
    except der.ValueTooLarge as exc:
        raise ParseError("embedded plist too large") from exc


def _text(value: object) -> str | None:
    return clean_text(value) if isinstance(value, str) else None


def _texts(value: object) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [clean_text(item, 256) for item in value[:MAX_LIST_ITEMS] if isinstance(item, str)]


def _date(value: object) -> str | None:
    return rfc3339(value) if isinstance(value, datetime) else None


def _developer_certificates(value: object) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    listed: list[dict[str, Any]] = []
    for item in value[:MAX_CERTIFICATES]:
        if not isinstance(item, bytes):
            continue
        try:
            cert = load_certificate(item)
            listed.append({"subject": distinguished_name(cert.subject), "serial": serial_hex(cert),
                           "not_after": rfc3339(cert.not_valid_after_utc)})
        except Exception:
            listed.append({"parse_error": "invalid certificate"})
    return listed


def describe_plist(plist: dict[str, Any]) -> tuple[dict[str, Any], datetime | None]:
    metadata: dict[str, Any] = {
        "uuid": _text(plist.get("UUID")),
        "name": _text(plist.get("Name")),
        "app_id_name": _text(plist.get("AppIDName")),
        "team_identifier": _texts(plist.get("TeamIdentifier")),
        "team_name": _text(plist.get("TeamName")),
        "platform": _texts(plist.get("Platform")),
        "creation_date": _date(plist.get("CreationDate")),
        "expiration_date": _date(plist.get("ExpirationDate")),
    }
    managed = plist.get("IsXcodeManaged")
    metadata["is_xcode_managed"] = managed if isinstance(managed, bool) else None
    devices = plist.get("ProvisionedDevices")
    metadata["provisioned_devices"] = len(devices) if isinstance(devices, list) else 0
    if plist.get("ProvisionsAllDevices") is True:
        metadata["provisions_all_devices"] = True
    entitlements = plist.get("Entitlements")
    application_identifier = None
    if isinstance(entitlements, dict):
        application_identifier = _text(entitlements.get("application-identifier")) or _text(
            entitlements.get("com.apple.application-identifier"))
    metadata["application_identifier"] = application_identifier
    metadata["developer_certificates"] = _developer_certificates(plist.get("DeveloperCertificates")) or []
    expiration = plist.get("ExpirationDate")
    return metadata, as_utc(expiration) if isinstance(expiration, datetime) else None


def parse_provisioning_profile(data: bytes) -> FileMetadata:
    metadata: dict[str, Any] = {"type": "provisioning_profile"}
    try:
        content = encapsulated_content(data)
    except der.DerError:
        return FileMetadata({**metadata, "parse_error": "not a valid CMS signed-data file"}, None)
    except ParseError as exc:
        return FileMetadata({**metadata, "parse_error": str(exc)}, None)
    try:
        plist = plistlib.loads(content)
    except Exception:
        return FileMetadata({**metadata, "parse_error": "invalid plist"}, None)
    if not isinstance(plist, dict):
        return FileMetadata({**metadata, "parse_error": "unexpected plist content"}, None)
    fields, expires_at = describe_plist(plist)
    return FileMetadata({**metadata, **fields}, expires_at)
