"""Keep the README's settings table equal to `tap-avicenna --about --format=markdown`.

.venv/bin/python scripts/readme_settings.py          # rewrite README.md in place
.venv/bin/python scripts/readme_settings.py --check  # exit 1 when it is stale
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def settings_table() -> str:
    about = subprocess.run(
        [sys.executable, "-m", "tap_avicenna", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = about.split("## Settings", 1)[1].strip().splitlines()
    table = [line for line in lines if line.startswith("|")]
    return "\n".join(table)


def render(readme: str, table: str) -> str:
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main() -> int:
    readme = README.read_text()
    updated = render(readme, settings_table())
    if "--check" in sys.argv:
        if updated != readme:
            print("README.md settings table is stale: run scripts/readme_settings.py")
            return 1
        return 0
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
