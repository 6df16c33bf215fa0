"""The dbt package's SQL follows the dbt-labs style guide on aliases: no one-letter
table aliases (`from days as d`, `join x c`) nor references through one (`d.local_date`,
also inside a macro's quoted argument).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TRANSFORM = Path(__file__).resolve().parents[2] / "transform"
BUILT = {"target", "dbt_packages", "logs"}  # dbt's output and installed packages (git-ignored)

# Jinja comments and double-quoted strings (the macros' messages) are prose, not SQL.
PROSE = re.compile(r"\{#.*?#\}|\"[^\"\n]*\"", re.S)
ALIAS = re.compile(
    r"\b(?:as|(?:from|join)\s+(?:\{\{(?:(?!\}\}).)*\}\}|[\w.]+)(?:\s+as)?)\s+([a-z])\b(?![\w.(])",
    re.I | re.S,
)
REFERENCE = re.compile(r"(?<![\w.])([a-z])\.[a-z_]", re.I)


def one_letter_aliases(sql: str) -> list[int]:
    """The numbers of the lines of `sql` that name or use a one-letter alias, prose left out."""
    code = PROSE.sub(lambda match: "\n" * match.group().count("\n"), sql)
    starts = [match.start(1) for pattern in (ALIAS, REFERENCE) for match in pattern.finditer(code)]
    return sorted({code.count("\n", 0, start) + 1 for start in starts})


@pytest.mark.parametrize(
    "sql",
    [
        "select d.day from days as d",
        "from days d\nwhere 1 = 1",
        "left join {{ ref('x') }} as c on true",
        "from {{ rows(\n  ref('x')\n) }} as r",
        "{{ avicenna_day_hours('d.local_date') }}",
    ],
)
def test_given_a_one_letter_alias_when_scanned_then_it_is_found(sql: str) -> None:
    assert one_letter_aliases(sql)


def test_given_named_aliases_casts_and_prose_when_scanned_then_nothing_is_found() -> None:
    sql = (
        "{#- rows as a whole, e.g. a day -#}\n"
        "select days.day, cast(null as {{ ts }}) as day_hours, cast(x as date)\n"
        "from days\n"
        "left join {{ ref('x') }} as compliance on compliance.day = days.day\n"
        '{{ exceptions.raise_compiler_error("set it as a var") }}'
    )
    assert one_letter_aliases(sql) == []


def test_given_the_package_sql_when_scanned_then_no_one_letter_alias() -> None:
    files = sorted(
        path
        for path in TRANSFORM.rglob("*.sql")
        if not BUILT & set(path.relative_to(TRANSFORM).parts)
    )
    assert len(files) > 20
    offences = [
        f"{path.relative_to(TRANSFORM.parent)}:{number}: {lines[number - 1].strip()}"
        for path in files
        for lines in [path.read_text(encoding="utf-8").splitlines()]
        for number in one_letter_aliases("\n".join(lines))
    ]
    assert offences == [], "one-letter aliases (dbt-labs style guide):\n" + "\n".join(offences)
