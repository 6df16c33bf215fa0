"""Synthetic marts for the report's tests and its size measurement: the columns of
avicenna__participant_day_summary, avicenna__data_yield_daily and
avicenna__compliance_daily that the report reads, for `participants` x `days`, written
into a DuckDB file. Seeded: the same arguments make the same marts.

Every 9th participant starts a week late, every 11th dropped out after two thirds of
the study, every 13th has had no GPS for its last 5 days, every 7th answers about a
third of its prompts (the others about 80 %), and 1 day in 25 has no data at all.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

FIRST_DAY = dt.date(2025, 1, 1)
SENSORS = ("gps", "accelerometer", "battery")
LOADED_AT = dt.datetime(2025, 4, 2, 3, 0, tzinfo=dt.timezone.utc)


def write_marts(
    path: Path,
    schema: str,
    participants: int,
    days: int,
    *,
    surveys: Sequence[str] | None = ("daily", "weekly"),
    seed: int = 7,
) -> None:
    """The marts in `schema` of the DuckDB file `path`; `surveys` None: the compliance
    mart without a `survey` column (one row per participant-day, all surveys pooled)."""
    rng = random.Random(seed)
    summary: list[dict[str, Any]] = []
    yields: list[dict[str, Any]] = []
    compliance: list[dict[str, Any]] = []
    for number in range(1, participants + 1):
        pid = 1000 + number
        first = 7 if number % 9 == 0 else 0
        last = days * 2 // 3 if number % 11 == 0 else days - 1
        for offset in range(first, last + 1):
            day = FIRST_DAY + dt.timedelta(days=offset)
            silent = rng.random() < 0.04
            row: dict[str, Any] = {
                "participant_id": pid,
                "local_date": day,
                "participation_day": offset - first + 1,
                "is_dropped": number % 11 == 0,
            }
            for sensor in SENSORS:
                quiet = silent or (sensor == "gps" and number % 13 == 0 and offset > last - 5)
                hours = 0 if quiet else rng.choice((24, 24, 24, 23, 20, 16, 9))
                row[f"{sensor}_hours_with_data"] = hours
                if hours:
                    yields.append(
                        {
                            "participant_id": pid,
                            "local_date": day,
                            "sensor": sensor,
                            "hours_with_data": hours,
                            "minutes_with_data": hours * 60 - rng.randrange(0, 30),
                            "_loaded_at": LOADED_AT,
                        }
                    )
            has_gps = row["gps_hours_with_data"] > 0
            row["distance_meters"] = rng.uniform(500, 25_000) if has_gps else None
            row["minutes_at_home"] = rng.uniform(600, 1300) if has_gps else None
            answering = 0.33 if number % 7 == 0 else 0.8
            for survey in surveys or ("all",):
                delivered = 0 if silent else rng.choice((2, 3, 3, 4))
                if delivered:
                    answered = sum(rng.random() < answering for _ in range(delivered))
                    compliance.append(
                        {
                            "participant_id": pid,
                            "local_date": day,
                            **({"survey": survey} if surveys else {}),
                            "prompts": delivered,
                            "prompts_delivered": delivered,
                            "prompts_answered": answered,
                            "response_rate": answered / delivered,
                            "_loaded_at": LOADED_AT,
                        }
                    )
            row["has_data"] = not silent
            summary.append(row)
    with duckdb.connect(str(path)) as connection:
        connection.execute(f"create schema if not exists {schema}")
        for name, rows in (
            ("avicenna__participant_day_summary", summary),
            ("avicenna__data_yield_daily", yields),
            ("avicenna__compliance_daily", compliance),
        ):
            connection.register("new_rows", pa.Table.from_pylist(rows))
            connection.execute(f"create or replace table {schema}.{name} as from new_rows")
            connection.unregister("new_rows")
