"""Each setting's default comes from the settings schema alone."""

from __future__ import annotations

import typing as t

import pytest

from tap_avicenna.settings import CONFIG_SCHEMA, Settings, parse_settings

MINIMAL = {"username": "u", "api_key": "k", "study_id": 1, "start_date": "2025-01-01"}
DAY = 86400.0
# setting, another default for the schema, how the parsed setting shows it
TABLE: list[tuple[str, t.Any, t.Callable[[Settings], t.Any]]] = [
    ("api_url", "https://api.example.org", lambda s: s.api_url),
    ("export_window_days", 3, lambda s: s.export_window.total_seconds() / DAY),
    ("participants_per_export", 7, lambda s: s.participants_per_export),
    ("max_concurrent_exports", 7, lambda s: s.max_concurrent_exports),
    ("poll_interval_seconds", 7, lambda s: s.poll_interval_seconds),
    ("export_timeout_seconds", 7, lambda s: s.export_timeout_seconds),
    ("request_timeout_seconds", 7, lambda s: s.request_timeout_seconds),
    ("retry_backoff_seconds", 7, lambda s: s.retry_backoff_seconds),
    ("lookback_days", 3, lambda s: s.lookback.total_seconds() / DAY),
    ("max_waiting_files_mb", 7, lambda s: s.max_waiting_files_bytes / 1024 / 1024),
    ("max_uncompressed_file_mb", 7, lambda s: s.max_uncompressed_file_bytes / 1024 / 1024),
    ("shard_count", 7, lambda s: s.shard_count),
    ("skip_unchanged_days", False, lambda s: s.skip_unchanged_days),
]


@pytest.mark.parametrize(("name", "changed", "shown"), TABLE, ids=[row[0] for row in TABLE])
def test_given_a_setting_left_out_when_parsed_then_the_schemas_default_applies(
    name: str, changed: t.Any, shown: t.Callable[[Settings], t.Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert shown(parse_settings(MINIMAL)) == CONFIG_SCHEMA["properties"][name]["default"]
    monkeypatch.setitem(CONFIG_SCHEMA["properties"][name], "default", changed)
    assert shown(parse_settings(MINIMAL)) == changed  # no other source of the default
