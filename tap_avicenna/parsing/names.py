"""Field names for CSV header cells: lower snake_case identifiers, unique per header."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize_name(raw: str) -> str:
    """Make a lower snake_case identifier of a CSV header cell.

    Accents are dropped (NFKD), every run of other characters becomes ``_``, ``_`` is trimmed
    at both ends, a leading digit gets a ``c_`` prefix, and an empty result is ``column``.
    """
    name = raw.lower()
    if not name.isascii():
        name = unicodedata.normalize("NFKD", name)
        name = "".join(ch for ch in name if not unicodedata.combining(ch))
    name = _NON_ALNUM.sub("_", name).strip("_")
    if not name:
        return "column"
    if name[0].isdigit():
        return "c_" + name
    return name


def normalize_header(
    raw: Sequence[str], name_of: Callable[[str], str] = normalize_name
) -> list[str]:
    """Normalize every header cell (with `name_of`); make names unique.

    The first column with a given name keeps it; later ones get ``_2``, ``_3``, ... skipping any
    name another column has (so ``a, a, a_2`` becomes ``a, a_3, a_2``).
    """
    bases = [name_of(cell) for cell in raw]
    taken = set(bases)
    seen: set[str] = set()
    names: list[str] = []
    for base in bases:
        name = base
        if name in seen:
            n = 2
            while f"{base}_{n}" in taken:
                n += 1
            name = f"{base}_{n}"
            taken.add(name)
        seen.add(name)
        names.append(name)
    return names
