"""The report's HTML page: header, "needs attention" list and charts, with Plotly's
JavaScript inlined once, so that the file opens offline."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence

import plotly.graph_objects as go
import plotly.io
import plotly.offline

from tap_avicenna_report.attention import Concern
from tap_avicenna_report.study import Study

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.facts dt { color: #666; } dl.facts dd { margin: 0; }
ul.attention { max-height: 22em; overflow-y: auto; display: grid; gap: 0.2em 2em;
  grid-template-columns: repeat(auto-fill, minmax(32em, 1fr)); }
.note { color: #666; font-size: 0.9em; }
.chart { margin: 1em 0 2em; }
"""


def _utc(moment: object) -> str:
    """A time as `YYYY-MM-DD HH:MM UTC`; one without zone is UTC (the marts' load times)."""
    if not isinstance(moment, dt.datetime):
        return str(moment)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _facts(study: Study, generated: dt.datetime) -> str:
    dropped = sum(participant.dropped for participant in study.participants)
    span = (
        f"{study.days[0]} to {study.days[-1]} ({len(study.days)} local days)"
        if study.days
        else "no days"
    )
    facts = {
        "study span": span,
        "participants": f"{len(study.participants)} ({dropped} dropped out, marked ✕)",
        "participant-days": f"{study.participant_days:,}"
        f" ({sum(study.has_data.values()):,} with data)",
        "sensors": ", ".join(study.sensors) or "none",
        "surveys": ", ".join(study.surveys) if study.per_survey else "pooled (all surveys)",
        # the loader's time, else the export's download time: both moments of the sync
        "last synced": "not recorded (no _loaded_at in the marts)"
        if study.loaded_at is None
        else _utc(study.loaded_at),
        "marts": f"schema {study.schema}",
        "report made": _utc(generated),
    }
    rows = "".join(
        f"<dt>{html.escape(name)}</dt><dd data-fact={html.escape(name)!r}>{html.escape(value)}</dd>"
        for name, value in facts.items()
    )
    return f'<dl class="facts">{rows}</dl>'


def _attention(found: Sequence[Concern], quiet_days: int, min_response_rate: float) -> str:
    rule = (
        f"no data for the last {quiet_days} days or more of the participation, or fewer than"
        f" {min_response_rate:.0%} of the prompts delivered answered"
    )
    if not found:
        return f'<p class="note">Nobody: {html.escape(rule)}.</p>'
    reasons: dict[str, list[str]] = {}
    for concern in found:
        reasons.setdefault(concern.participant.label, []).append(concern.what)
    items = "".join(
        f"<li><b>{html.escape(label)}</b>: {html.escape('; '.join(whats))}</li>"
        for label, whats in reasons.items()
    )
    return (
        f'<p class="note">{len(reasons)} participants: {html.escape(rule)}.</p>'
        f'<ul class="attention">{items}</ul>'
    )


def _chart(figure: go.Figure, chart_id: str) -> str:
    body = plotly.io.to_html(
        figure,
        full_html=False,
        include_plotlyjs=False,
        div_id=chart_id,
        config={"displaylogo": False, "responsive": True},
    )
    return f'<div class="chart">{body}</div>'


def render(
    study: Study,
    charts: Sequence[tuple[str, str, go.Figure]],
    found: Sequence[Concern],
    *,
    quiet_days: int,
    min_response_rate: float,
    generated: dt.datetime,
) -> str:
    """The whole page; `charts` are (section heading, element id, figure)."""
    sections: list[str] = []
    for heading, chart_id, figure in charts:
        if heading:
            sections.append(f"<h2>{html.escape(heading)}</h2>")
        sections.append(_chart(figure, chart_id))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Study health report</title>
<style>{STYLE}</style>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>
</head>
<body>
<h1>Study health report</h1>
{_facts(study, generated)}
<h2>Needs attention</h2>
{_attention(found, quiet_days, min_response_rate)}
<p class="note">Heatmaps: one row per participant, one column per local day; grey: outside
the participation. Menus above a chart page through the participants.</p>
{"".join(sections)}
</body>
</html>
"""
