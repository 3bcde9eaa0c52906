"""Apple provisioning profiles: CMS-signed plists, as DER or as the BER Apple's tools write."""

from __future__ import annotations

import plistlib
import time
from datetime import datetime, timedelta

import pytest

from securefiles.storage.domain.file_metadata import parse_file_metadata
from tests.unit.test_file_metadata_samples import (
    NOW,
    developer_certs,
    profile,
    profile_plist,
    sign_cms,
    to_ber,
)


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_profile_fields():
    result = parse_file_metadata("App_Store.mobileprovision", profile(300))
    development, distribution = developer_certs()
    expiration = NOW + timedelta(days=300)
    assert result.metadata == {
        "type": "provisioning_profile",
        "uuid": "8f1c6a52-3a4b-4c2d-9e8f-0123456789ab",
        "name": "Example App Store Profile",
        "app_id_name": "Example App",
        "team_identifier": ["ABCDE12345"],
        "team_name": "Example Corp",
        "platform": ["iOS", "xrOS"],
        "creation_date": "2025-01-02T03:04:05Z",
        "expiration_date": rfc3339(expiration),
        "is_xcode_managed": False,
        "provisioned_devices": 2,
        "application_identifier": "ABCDE12345.com.example.app",
        "developer_certificates": [
            {"subject": "CN=Apple Development: Jane Doe (X1Y2Z3)", "serial": "DEAD01",
             "not_after": rfc3339(development.not_valid_after_utc)},
            {"subject": "CN=Apple Distribution: Example Corp (ABCDE12345)", "serial": "DEAD02",
             "not_after": rfc3339(distribution.not_valid_after_utc)},
        ],
    }
    assert result.expires_at == expiration


def test_ber_encoded_profile_with_indefinite_lengths_and_chunked_content_reads_the_same():
    ber = to_ber(profile(300), chunk=500)
    assert ber != profile(300) and b"\x24\x80" in ber and b"\x30\x80" in ber
    assert parse_file_metadata("x.mobileprovision", ber) == parse_file_metadata("x.mobileprovision", profile(300))


@pytest.mark.parametrize(("days_left", "expired"), [(-2, True), (10, False)])
def test_expired_and_expiring_profiles(days_left, expired):
    result = parse_file_metadata("p.mobileprovision", profile(days_left))
    assert result.expires_at == NOW + timedelta(days=days_left)
    assert (result.expires_at < NOW) is expired


def test_profile_is_recognised_by_content_whatever_the_name():
    assert parse_file_metadata("download", profile()).metadata["type"] == "provisioning_profile"


def test_macos_profile_with_binary_plist_and_macos_entitlement_key():
    plist = profile_plist([], NOW + timedelta(days=30), Platform=["OSX"], ProvisionsAllDevices=True,
                          Entitlements={"com.apple.application-identifier": "ABCDE12345.com.example.mac"})
    del plist["ProvisionedDevices"]
    data = sign_cms(plistlib.dumps(plist, fmt=plistlib.FMT_BINARY))
    metadata = parse_file_metadata("Mac.provisionprofile", data).metadata
    assert metadata["application_identifier"] == "ABCDE12345.com.example.mac"
    assert metadata["platform"] == ["OSX"]
    assert metadata["provisioned_devices"] == 0
    assert metadata["provisions_all_devices"] is True
    assert metadata["developer_certificates"] == []


def test_unexpected_plist_value_types_are_ignored_not_fatal():
    plist = profile_plist([], NOW, Name=42, TeamIdentifier=["OK", 7, 1.5], UUID=["x"], IsXcodeManaged="yes",
                          ProvisionedDevices="not a list", Entitlements=["nope"],
                          DeveloperCertificates=[b"not a certificate", "text"])
    result = parse_file_metadata("odd.mobileprovision", sign_cms(plistlib.dumps(plist)))
    metadata = result.metadata
    assert metadata["name"] is None and metadata["uuid"] is None
    assert metadata["team_identifier"] == ["OK"]
    assert metadata["is_xcode_managed"] is None
    assert metadata["provisioned_devices"] == 0
    assert metadata["application_identifier"] is None
    assert metadata["developer_certificates"] == [{"parse_error": "invalid certificate"}]
    assert "parse_error" not in metadata


def test_oversized_plist_inside_a_valid_cms_wrapper_is_refused_before_parsing():
    padding = "x" * (3 * 1024 * 1024)
    data = sign_cms(plistlib.dumps(profile_plist([], NOW, Notes=padding)))
    started = time.monotonic()
    result = parse_file_metadata("big.mobileprovision", data)
    assert time.monotonic() - started < 2
    assert result.metadata == {"type": "provisioning_profile", "parse_error": "embedded plist too large"}
    assert parse_file_metadata("big.mobileprovision", to_ber(data)).metadata["parse_error"] == (
        "embedded plist too large")


@pytest.mark.parametrize(("content", "error"), [
    (b"definitely not a plist", "invalid plist"),
    (plistlib.dumps(["an", "array"]), "unexpected plist content"),
    (b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><plist><string>&a;</string></plist>", "invalid plist"),
])
def test_bad_plist_content(content, error):
    result = parse_file_metadata("bad.mobileprovision", sign_cms(content))
    assert result.metadata == {"type": "provisioning_profile", "parse_error": error}


def test_random_bytes_named_like_a_profile():
    result = parse_file_metadata("x.mobileprovision", bytes(range(256)) * 10)
    assert result.metadata == {"type": "provisioning_profile", "parse_error": "not a valid CMS signed-data file"}
