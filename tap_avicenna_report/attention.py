"""The "needs attention" list: participants whose phones went quiet, or who stopped
answering."""

from __future__ import annotations

import datetime as dt
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from tap_avicenna_report.study import Day, Participant, Study

QUIET_DAYS = 3  # default of --quiet-days
MIN_RESPONSE_RATE = 0.5  # default of --min-response-rate


@dataclass(frozen=True)
class Concern:
    """One reason to look at one participant."""

    participant: Participant
    what: str


def _quiet_days(participant: Participant, with_data: Container[Day]) -> int:
    """Days without data at the end of the participation (up to its last day)."""
    quiet = 0
    day = participant.last_day
    while day >= participant.first_day and (participant.id, day) not in with_data:
        quiet += 1
        day -= dt.timedelta(days=1)
    return quiet


def concerns(study: Study, quiet_days: int, min_response_rate: float) -> list[Concern]:
    """No data (of any kind, or of one sensor) for the last `quiet_days` days or more of a
    participation; a response rate below `min_response_rate` over the prompts delivered."""
    any_data = {day for day, has_data in study.has_data.items() if has_data}
    totals: dict[tuple[str, Any], list[int]] = {}
    for survey, table in study.compliance.items():
        for (pid, _), day in table.items():
            total = totals.setdefault((survey, pid), [0, 0])
            total[0] += day.delivered
            total[1] += day.answered
    found: list[Concern] = []
    for participant in study.participants:
        quiet = _quiet_days(participant, any_data)
        if quiet >= quiet_days:
            found.append(Concern(participant, f"no data of any kind for the last {quiet} days"))
        else:
            for sensor in study.sensors:
                quiet = _quiet_days(participant, study.yields[sensor])
                if quiet >= quiet_days:
                    found.append(Concern(participant, f"no {sensor} for the last {quiet} days"))
        for survey in study.surveys:
            delivered, answered = totals.get((survey, participant.id), (0, 0))
            if delivered and answered / delivered < min_response_rate:
                found.append(
                    Concern(
                        participant,
                        f"{survey}: answered {answered} of {delivered} prompts"
                        f" ({answered / delivered:.0%})",
                    )
                )
    return found
