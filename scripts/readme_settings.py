"""Keep the documentation generated from the tap equal to it.

- README.md: the settings table and the known data sources, as
  `tap-avicenna --about --format=markdown` prints them;
- meltano.yml: the extractor's `settings:` (name, kind, label, description, default,
  sensitive) from the tap's settings schema (`--about --format=json`).

.venv/bin/python scripts/readme_settings.py          # rewrite both in place
.venv/bin/python scripts/readme_settings.py --check  # exit 1 when one is stale
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MELTANO_YML = ROOT / "meltano.yml"
SETTINGS = "<!-- settings:start -->", "<!-- settings:end -->"
DATA_SOURCES = "<!-- datasources:start -->", "<!-- datasources:end -->"
MELTANO_SETTINGS = (
    "    # settings:start (generated from the tap's schema by scripts/readme_settings.py)",
    "    # settings:end",
)

SDK_OWN = {"stream_maps", "stream_map_config", "faker_config"}
"""singer-sdk settings meltano.yml leaves out (with the `flattening_*` ones): meltano
passes them through from `config:` anyway. `batch_config` is declared: the README
shows it set through meltano."""

_KINDS = {"string": "string", "integer": "integer", "boolean": "boolean", "array": "array"}
_KINDS |= {"object": "object", "number": "string"}
"""JSON type -> meltano kind. Numbers are `string`: meltano 4.4 crashes on `kind:
decimal` values set from the environment, and the tap accepts numeric strings."""

_WORDS = {"api": "API", "id": "ID", "ids": "IDs", "url": "URL", "mb": "MB"}


def about(output_format: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "tap_avicenna", "--about", f"--format={output_format}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _section(markdown: str, heading: str) -> list[str]:
    """The lines under a `## heading`, up to the next heading."""
    lines = markdown.split(f"## {heading}\n", 1)[1].splitlines()
    end = next((i for i, line in enumerate(lines) if line.startswith("#")), len(lines))
    return lines[:end]


def settings_table(markdown: str) -> str:
    """The settings table of `--about --format=markdown`."""
    lines = _section(markdown, "Settings")
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def data_sources_section(markdown: str) -> str:
    """The known data sources of `--about --format=markdown` (text and table)."""
    return "\n".join(_section(markdown, "Known data sources")).strip()


def render(text: str, markers: tuple[str, str], body: str) -> str:
    """`text` with the lines between the two marker lines replaced by `body`."""
    head, rest = text.split(markers[0], 1)
    _, tail = rest.split(markers[1], 1)
    return f"{head}{markers[0]}\n{body}\n{markers[1]}{tail}"


def _label(name: str) -> str:
    words = [_WORDS.get(word, word) for word in name.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def _meltano_setting(name: str, spec: dict[str, t.Any]) -> dict[str, t.Any]:
    types = spec.get("type", "string")
    json_type = next(x for x in ([types] if isinstance(types, str) else types) if x != "null")
    kind = "date_iso8601" if spec.get("format") == "date-time" else _KINDS[json_type]
    setting: dict[str, t.Any] = {"name": name, "kind": kind, "label": _label(name)}
    if spec.get("description"):
        setting["description"] = spec["description"]
    if "default" in spec:
        default = spec["default"]
        setting["value"] = str(default) if json_type == "number" else default
    if spec.get("secret"):
        setting["sensitive"] = True
    return setting


def meltano_settings(about_json: str) -> str:
    """The extractor's `settings_group_validation:` (the required settings, which
    `meltano config list` then shows as required) and `settings:`, from the schema."""
    schema = json.loads(about_json)["settings"]
    items = [
        _meltano_setting(name, spec)
        for name, spec in schema["properties"].items()
        if name not in SDK_OWN and not name.startswith("flattening_")
    ]
    plugin = {"settings_group_validation": [schema.get("required", [])], "settings": items}
    text = yaml.safe_dump(plugin, sort_keys=False, width=90, allow_unicode=True)
    return "\n".join(f"    {line}" for line in text.splitlines())


def updated() -> dict[Path, str]:
    """Each generated file with its generated parts brought up to date."""
    markdown = about("markdown")
    readme = render(README.read_text(), SETTINGS, settings_table(markdown))
    readme = render(readme, DATA_SOURCES, data_sources_section(markdown))
    meltano = render(MELTANO_YML.read_text(), MELTANO_SETTINGS, meltano_settings(about("json")))
    return {README: readme, MELTANO_YML: meltano}


def main() -> int:
    stale = {path: text for path, text in updated().items() if path.read_text() != text}
    if "--check" in sys.argv:
        for path in stale:
            print(f"{path.name} is stale: run .venv/bin/python scripts/readme_settings.py")
        return 1 if stale else 0
    for path, text in stale.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
