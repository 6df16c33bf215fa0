"""Figures, goals and the plain-text / JSON report."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field


@dataclass
class Figure:
    """One line of the report: a measured value and, when there is one, its goal."""

    label: str
    value: float | int | str | None
    unit: str = ""
    goal: str = ""
    met: bool | None = None  # None: no goal, or not measured
    key: str = ""  # JSON name; derived from the label when empty
    digits: int = 0

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        if isinstance(self.value, str):
            return self.value
        if isinstance(self.value, int) or self.digits == 0:
            text = f"{self.value:,.0f}"
        else:
            text = f"{self.value:,.{self.digits}f}"
        return f"{text} {self.unit}".rstrip()

    def status(self) -> str:
        if self.met is None:
            return ""
        return "met" if self.met else "NOT MET"

    def json_key(self) -> str:
        if self.key:
            return self.key
        return "".join(c if c.isalnum() else "_" for c in self.label.lower()).strip("_")


@dataclass
class Section:
    """One concern of the benchmark (sensor path, surveys, concurrency, ...)."""

    key: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    extra: dict[str, t.Any] = field(default_factory=dict)

    def add(
        self,
        label: str,
        value: float | int | str | None,
        unit: str = "",
        *,
        goal: str = "",
        met: bool | None = None,
        key: str = "",
        digits: int = 0,
    ) -> Figure:
        figure = Figure(label, value, unit, goal, met, key, digits)
        self.figures.append(figure)
        return figure

    def add_raw_ratio(self, rate: float, raw_rate: float, goal: float) -> None:
        """The tap's records/s over the raw loop's rows/s on the same file."""
        ratio = rate / raw_rate
        self.add(
            "tap / raw",
            ratio,
            "x",
            goal=f">= {goal} x raw",
            met=ratio >= goal,
            key="tap_raw_ratio",
            digits=2,
        )

    def add_wall_and_ideal(self, wall: float, ideal: float, goal: float) -> None:
        """The tap's wall time, and its ratio to the ideal (at most `goal`)."""
        self.add("tap wall time", wall, "s", digits=2, key="tap_wall_seconds")
        ratio = wall / ideal
        self.add(
            "tap / ideal",
            ratio,
            "x",
            goal=f"<= {goal} x ideal",
            met=ratio <= goal,
            key="tap_ideal_ratio",
            digits=2,
        )

    def to_json(self) -> dict[str, t.Any]:
        return {
            "title": self.title,
            "figures": {
                f.json_key(): {
                    "label": f.label,
                    "value": f.value,
                    "unit": f.unit,
                    "goal": f.goal or None,
                    "met": f.met,
                }
                for f in self.figures
            },
            "notes": self.notes,
            "failures": self.failures,
            **self.extra,
        }


def render_text(sections: t.Sequence[Section], header: t.Sequence[str]) -> str:
    """All sections as one aligned plain-text table, then notes and a goal summary."""
    rows: list[tuple[str, str, str, str]] = [
        (f.label, f.shown(), f.goal, f.status()) for s in sections for f in s.figures
    ]
    widths = [
        max([len(title), *(len(r[i]) for r in rows)])
        for i, title in enumerate(("figure", "value", "goal", "status"))
    ]

    def line(cells: t.Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = list(header)
    out.append("")
    out.append(line(("figure", "value", "goal", "status")))
    out.append("  ".join("-" * w for w in widths))
    for section in sections:
        out.append("")
        out.append(f"[{section.title}]")
        for figure in section.figures:
            out.append(line((figure.label, figure.shown(), figure.goal, figure.status())))
        out.extend(f"  note: {note}" for note in section.notes)
        out.extend(f"  FAILED: {failure}" for failure in section.failures)
    goals = [f for s in sections for f in s.figures if f.met is not None]
    met = sum(1 for f in goals if f.met)
    out.append("")
    out.append(f"Goals: {met} of {len(goals)} met")
    for figure in goals:
        if not figure.met:
            out.append(f"  not met: {figure.label} = {figure.shown()} (goal {figure.goal})")
    failures = [f for s in sections for f in s.failures]
    out.append(f"Runs failed: {len(failures)}")
    return "\n".join(out)
