"""Human durations and region endpoint lists, as typed into flags and environment variables."""

from __future__ import annotations

import pytest

from securefiles.common.config import ConfigError, parse_endpoints
from securefiles.common.durations import parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0),
    ("90", 90),
    ("90s", 90),
    ("15m", 15 * 60),
    ("8h", 8 * 3600),
    ("30d", 30 * 86400),
    ("2w", 14 * 86400),
    ("1h30m", 3600 + 30 * 60),
    ("1d2h3m4s", 86400 + 2 * 3600 + 3 * 60 + 4),
    ("90m", 90 * 60),
    ("  15m\n", 15 * 60),
    ("8H", 8 * 3600),
    ("1H30M", 3600 + 30 * 60),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", [
    "", " ", "s", "h1", "1.5h", "-5m", "+5m", "5 m", "1h 30m", "1h,30m", "5y", "5ms", "1h30", "m30", "five minutes",
    "1e3", "0x10",
])
def test_parse_duration_rejects_anything_else(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("raw", "endpoints"), [
    ("eu=kms-eu:8443", {"eu": "kms-eu:8443"}),
    ("eu=kms-eu:8443,us=kms-us:8443", {"eu": "kms-eu:8443", "us": "kms-us:8443"}),
    (" eu = kms-eu:8443 , us=kms-us:8443 ,", {"eu": "kms-eu:8443", "us": "kms-us:8443"}),
    ("eu=127.0.0.1:50051,,us=[::1]:50052", {"eu": "127.0.0.1:50051", "us": "[::1]:50052"}),
    ("eu=dns:///kms.internal:443", {"eu": "dns:///kms.internal:443"}),
])
def test_parse_endpoints(raw, endpoints):
    assert parse_endpoints(raw) == endpoints


@pytest.mark.parametrize("raw", [
    "", " ", ",", " , ,", "eu", "kms-eu:8443", "eu=", "=kms-eu:8443", "eu=kms:1,us", "eu:kms:1", "eu = ",
])
def test_parse_endpoints_rejects_malformed_lists(raw):
    with pytest.raises(ConfigError):
        parse_endpoints(raw)


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_endpoints("nonsense")
