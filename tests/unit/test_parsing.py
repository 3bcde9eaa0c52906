"""Human durations and region endpoint lists, as typed into flags and environment variables."""

from __future__ import annotations

import pytest

from securefiles.common.config import ConfigError, parse_endpoints
from securefiles.common.durations import parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("0s", 0),
    ("90s", 90),
    ("15min", 15 * 60),
    ("8h", 8 * 3600),
    ("720h", 720 * 3600),
    ("30d", 30 * 86400),
    ("4w", 28 * 86400),
    ("1h30min", 3600 + 30 * 60),
    ("1d2h3min4s", 86400 + 2 * 3600 + 3 * 60 + 4),
    ("  15min\n", 15 * 60),
    ("8H", 8 * 3600),
    ("1H30MIN", 3600 + 30 * 60),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "why"), [
    ("30", "a number without a unit is ambiguous"),
    ("0", "a number without a unit is ambiguous"),
    ("1m", "'m' is ambiguous"),
    ("1h30m", "'m' is ambiguous"),
    ("15M", "'m' is ambiguous"),
    ("2mo", "months and years have no fixed length"),
    ("1y", "months and years have no fixed length"),
    ("6000w", "longer than 100 years"),
    ("9999999999s", "not a duration"),
    ("", "not a duration"),
    ("1.5h", "not a duration"),
    ("-5min", "not a duration"),
    ("5 min", "not a duration"),
    ("1h 30min", "not a duration"),
    ("5ms", "not a duration"),
    ("1h30", "not a duration"),
    ("five minutes", "not a duration"),
    ("1e3", "not a duration"),
    ("0x10", "not a duration"),
    ("\u0661\u0660s", "not a duration"),  # Arabic-Indic digits
])
def test_parse_duration_refuses_ambiguous_and_unitless_durations(text, why):
    with pytest.raises(ValueError) as error:
        parse_duration(text)
    message = str(error.value)
    assert why in message
    assert "\n" not in message
    if why != "longer than 100 years":
        assert "s, min, h, d, w" in message


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
