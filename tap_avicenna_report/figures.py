"""The report's charts (Plotly figures): heatmaps of participants x local days, and small
multiples of daily mobility.

Size: a heatmap is one image whatever its cells (200 participants x 90 days draws as
smoothly as 5 x 31), but its rows are paged, PAGE_ROWS at a time (a menu scrolls the
y axis), so that each row stays readable; the small multiples show MULTIPLES participants
at a time (a menu swaps the traces' data), never one subplot per participant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tap_avicenna_report.study import Participant, Study

PAGE_ROWS = 50  # participants a heatmap shows at once
MULTIPLES = 20  # participants the mobility small multiples show at once
MULTIPLE_COLUMNS = 4
MULTIPLE_PIXELS = 190  # height of a row of small multiples
OUTSIDE = "#e3e3e3"  # cells outside a participation
ROW_PIXELS = 14
MIN_PLOT_PIXELS = 120
DAY_MS = 86_400_000
MARGIN_TOP, MARGIN_BOTTOM = 110, 30
MENU_PIXELS = 42
LEGEND_PIXELS = 28  # the small multiples' legend, under their title

# the small multiples' lines: (legend, hover unit, style, on the right-hand axis)
MOBILITY_LINES = (
    ("distance (km)", "km", {"color": "#1f77b4", "width": 1.5}, False),
    ("time at home (h)", "h at home", {"color": "#ff7f0e", "width": 1.5, "dash": "dot"}, True),
)
Cell = tuple[float | None, Any]  # (the cell's value, its hover data)


def _pages(count: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def _page_menu(
    labels: Sequence[str],
    size: int,
    method: str,
    args: Callable[[int, int], list[Any]],
    *,
    plot_height: float,
    right: bool,
) -> Any:
    """A dropdown of the pages of `labels`: each button calls Plotly's `method` with
    `args(start, end)`. It sits MENU_PIXELS above the plot area (of `plot_height`
    pixels), clear of the axis labels, at the left or the right."""
    return {
        "buttons": [
            {
                "label": f"participants {labels[start]} - {labels[end - 1]}",
                "method": method,
                "args": args(start, end),
            }
            for start, end in _pages(len(labels), size)
        ],
        "direction": "down",
        "x": 1 if right else 0,
        "xanchor": "right" if right else "left",
        "y": 1 + MENU_PIXELS / plot_height,
        "yanchor": "bottom",
    }


def heatmap(
    study: Study,
    title: str,
    cell: Callable[[Participant, dt.date], Cell | None],
    *,
    zmax: float,
    colorscale: str,
    colorbar: str,
    hover: str,
) -> go.Figure:
    """Participants (rows, in id order, a dropped one marked ✕) x local days (columns),
    `cell` giving each cell its value and hover data (None: an empty cell); the days
    outside a participation are grey."""
    labels = [participant.label for participant in study.participants]
    days = [day.isoformat() for day in study.days]
    values: list[list[float | None]] = []
    hovers: list[list[Any]] = []
    outside: list[list[int | None]] = []
    for participant in study.participants:
        cells = [cell(participant, day) for day in study.days]
        values.append([None if found is None else found[0] for found in cells])
        hovers.append([None if found is None else found[1] for found in cells])
        outside.append([None if participant.takes_part(day) else 1 for day in study.days])
    shown = min(len(labels), PAGE_ROWS)
    plot_height = max(ROW_PIXELS * shown, MIN_PLOT_PIXELS)
    figure = go.Figure(
        [
            go.Heatmap(
                x=days,
                y=labels,
                z=outside,
                colorscale=[[0, OUTSIDE], [1, OUTSIDE]],
                showscale=False,
                hoverinfo="skip",
                name="outside participation",
            ),
            go.Heatmap(
                x=days,
                y=labels,
                z=values,
                customdata=hovers,
                zmin=0,
                zmax=zmax,
                colorscale=colorscale,
                colorbar={"title": {"text": colorbar}, "thickness": 12},
                hoverongaps=False,
                hovertemplate=f"participant %{{y}}<br>%{{x}}<br>{hover}<extra></extra>",
                xgap=1,
                ygap=1,
                name=title,
            ),
        ]
    )
    figure.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        height=MARGIN_TOP + MARGIN_BOTTOM + plot_height,
        margin={"l": 95, "r": 20, "t": MARGIN_TOP, "b": MARGIN_BOTTOM},
        plot_bgcolor="white",
        xaxis={
            "type": "date",
            "hoverformat": "%Y-%m-%d (%a)",
            "tickformat": "%b %d",
            "dtick": DAY_MS * max(1, len(days) // 15),  # a tick on a cell's middle
            "side": "top",
        },
        yaxis={
            "type": "category",
            "categoryorder": "array",
            "categoryarray": labels,
            "range": [shown - 0.5, -0.5],
            "dtick": 1,  # every participant's label
            "tickfont": {"size": 10},
            "title": {"text": "participant"},
        },
    )
    if len(labels) > PAGE_ROWS:
        figure.update_layout(
            updatemenus=[
                _page_menu(
                    labels,
                    PAGE_ROWS,
                    "relayout",
                    lambda start, end: [{"yaxis.range": [end - 0.5, start - 0.5]}],
                    plot_height=plot_height,
                    right=True,
                )
            ]
        )
    return figure


def yield_heatmap(study: Study, sensor: str) -> go.Figure:
    """Hours with data a day of one sensor (0 on the participation's days without any)."""
    table = study.yields[sensor]

    def cell(participant: Participant, day: dt.date) -> Cell | None:
        found = table.get((participant.id, day))
        if found is not None:
            return found.hours, found.minutes
        return (0, 0) if participant.takes_part(day) else None

    return heatmap(
        study,
        f"Data yield: {sensor}",
        cell,
        zmax=24,
        colorscale="Viridis",
        colorbar="hours",
        hover=f"{sensor}: %{{z}} hours with data (%{{customdata}} minutes)",
    )


def compliance_heatmap(study: Study, survey: str) -> go.Figure:
    """Share of the prompts delivered that were answered, a day (empty: none delivered)."""
    table = study.compliance[survey]

    def cell(participant: Participant, day: dt.date) -> Cell | None:
        found = table.get((participant.id, day))
        if found is None or found.rate is None:
            return None
        return found.rate, (found.answered, found.delivered)

    return heatmap(
        study,
        f"Survey compliance: {survey}",
        cell,
        zmax=1,
        colorscale="RdYlGn",
        colorbar="answered",
        hover=(f"{survey}: %{{customdata[0]}} of %{{customdata[1]}} prompts answered (%{{z:.0%}})"),
    )


def _mobility_series(study: Study, participant: Participant) -> tuple[list[str], ...]:
    assert study.mobility is not None
    days, distances, at_home = [], [], []
    for day in study.days:
        found = study.mobility.get((participant.id, day))
        if found is not None:
            days.append(day.isoformat())
            distances.append(
                None if found.distance_meters is None else round(found.distance_meters / 1000, 2)
            )
            at_home.append(
                None if found.minutes_at_home is None else round(found.minutes_at_home / 60, 2)
            )
    return days, distances, at_home  # type: ignore[return-value]


def mobility_multiples(study: Study) -> go.Figure:
    """Per participant, distance travelled (km) and time at home (hours) a day."""
    series = [_mobility_series(study, participant) for participant in study.participants]
    labels = [participant.label for participant in study.participants]
    slots = min(len(labels), MULTIPLES)
    rows = -(-slots // MULTIPLE_COLUMNS)
    figure = make_subplots(
        rows=rows,
        cols=MULTIPLE_COLUMNS,
        specs=[[{"secondary_y": True}] * MULTIPLE_COLUMNS for _ in range(rows)],
        subplot_titles=[f"participant {label}" for label in labels[:slots]],
        shared_xaxes="all",
        vertical_spacing=0.25 / rows,
        horizontal_spacing=0.07,
    )
    for slot in range(slots):
        days, *values = series[slot]
        where = {"row": slot // MULTIPLE_COLUMNS + 1, "col": slot % MULTIPLE_COLUMNS + 1}
        for (name, unit, line, secondary), ys in zip(MOBILITY_LINES, values, strict=True):
            figure.add_trace(
                go.Scatter(
                    x=days,
                    y=ys,
                    name=name,
                    legendgroup=name,
                    showlegend=slot == 0,
                    line=line,
                    hovertemplate=f"%{{x}}: %{{y}} {unit}<extra></extra>",
                ),
                secondary_y=secondary,
                **where,
            )
    figure.update_yaxes(rangemode="tozero", tickfont={"size": 9})
    figure.update_yaxes(
        range=[0, 24], tickvals=[0, 12, 24], tickmode="array", secondary_y=True, showgrid=False
    )
    figure.update_xaxes(tickfont={"size": 9})
    figure.update_layout(
        title={"text": "Daily mobility: distance (km, solid) and time at home (h, dotted)"},
        height=MARGIN_TOP + MARGIN_BOTTOM + MULTIPLE_PIXELS * rows,
        margin={"l": 50, "r": 40, "t": MARGIN_TOP, "b": MARGIN_BOTTOM},
        legend={
            "orientation": "h",
            "x": 0,
            "y": 1 + LEGEND_PIXELS / (MULTIPLE_PIXELS * rows),
            "yanchor": "bottom",
        },
    )
    if len(labels) > MULTIPLES:
        titles = list(figure.layout.annotations)

        def page(start: int, end: int) -> list[Any]:
            shown = [series[n] if n < end else ([], [], []) for n in range(start, start + slots)]
            return [
                {
                    "x": [s[0] for s in shown for _ in range(2)],
                    "y": [values for s in shown for values in (s[1], s[2])],
                },
                {
                    "annotations": [
                        {
                            **title.to_plotly_json(),
                            "text": f"participant {labels[n]}" if n < end else "",
                        }
                        for n, title in zip(range(start, start + slots), titles, strict=True)
                    ]
                },
            ]

        figure.update_layout(
            updatemenus=[
                _page_menu(
                    labels,
                    MULTIPLES,
                    "update",
                    page,
                    plot_height=MULTIPLE_PIXELS * rows,
                    right=True,
                )
            ]
        )
    return figure
