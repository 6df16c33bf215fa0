import datetime as dt
import decimal
import typing as t

import pytest

from tap_avicenna.errors import ConfigError
from tap_avicenna.settings import coerce_numbers, parse_settings

BASE: dict[str, t.Any] = {
    "username": "r@example.com",
    "api_key": "k",
    "study_id": 7,
    "start_date": "2025-01-01T00:00:00Z",
}


def test_given_numeric_strings_and_decimals_when_coerced_then_numbers() -> None:
    config = {
        "poll_interval_seconds": "0.5",
        "export_window_days": decimal.Decimal("7"),
        "lookback_days": decimal.Decimal("1.5"),
        "max_concurrent_exports": "4",
        "username": "12",
    }
    coerce_numbers(config)
    assert config == {
        "poll_interval_seconds": 0.5,
        "export_window_days": 7,
        "lookback_days": 1.5,
        "max_concurrent_exports": 4,
        "username": "12",  # not a number setting
    }


def test_given_no_end_date_when_parsed_then_now_to_the_minute() -> None:
    now = dt.datetime(2026, 11, 28, 1, 2, 3, 456, tzinfo=dt.timezone.utc)
    settings = parse_settings(BASE, now=now)
    assert settings.end_date == dt.datetime(2026, 11, 28, 1, 2, tzinfo=dt.timezone.utc)
    assert settings.export_window == dt.timedelta(days=7)
    assert settings.lookback == dt.timedelta(days=2)


def test_given_end_date_in_the_future_when_parsed_then_capped_at_now_to_the_minute() -> None:
    now = dt.datetime(2026, 11, 28, 1, 2, 3, 456, tzinfo=dt.timezone.utc)
    settings = parse_settings({**BASE, "end_date": "2027-01-01T00:00:00Z"}, now=now)
    assert settings.end_date == dt.datetime(2026, 11, 28, 1, 2, tzinfo=dt.timezone.utc)
    past = parse_settings({**BASE, "end_date": "2026-11-01T00:00:00Z"}, now=now)
    assert past.end_date == dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost", "http://[::1]:9", "https://a.example"]
)
def test_given_https_or_loopback_url_when_parsed_then_accepted(url: str) -> None:
    assert parse_settings({**BASE, "api_url": url + "/"}).api_url == url


@pytest.mark.parametrize("url", ["http://example.com", "http://10.0.0.5", "ftp://x"])
def test_given_plain_http_elsewhere_when_parsed_then_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="api_url"):
        parse_settings({**BASE, "api_url": url})


def test_given_shard_when_parsed_then_participants_split_by_modulo() -> None:
    settings = parse_settings({**BASE, "shard_count": 3, "shard_index": 2})
    assert [p for p in range(100, 110) if settings.in_shard(p)] == [101, 104, 107]
    with pytest.raises(ConfigError, match="shard_index"):
        parse_settings({**BASE, "shard_count": 3, "shard_index": 3})


def test_given_a_time_zone_when_parsed_then_zone_of_naive_timestamps_or_none_for_utc() -> None:
    assert parse_settings(BASE).naive_time_zone is None
    assert parse_settings({**BASE, "naive_timestamps_time_zone": "UTC"}).naive_time_zone is None
    zone = parse_settings({**BASE, "naive_timestamps_time_zone": "America/Toronto"})
    assert str(zone.naive_time_zone) == "America/Toronto"
    with pytest.raises(ConfigError, match=r"naive_timestamps_time_zone.*'Mars/Olympus'"):
        parse_settings({**BASE, "naive_timestamps_time_zone": "Mars/Olympus"})


def test_given_strict_types_when_parsed_then_only_true_is_strict() -> None:
    assert parse_settings(BASE).strict_types is False
    assert parse_settings({**BASE, "strict_types": True}).strict_types is True
