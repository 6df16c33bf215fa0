"""The README's settings table is the one `tap-avicenna --about --format=markdown` prints."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_given_readme_when_compared_with_about_then_settings_table_is_current() -> None:
    script = ROOT / "scripts/readme_settings.py"
    spec = importlib.util.spec_from_file_location("readme_settings", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.settings_table()
    assert "| username | True |" in table
    readme = (ROOT / "README.md").read_text()
    assert module.render(readme, table) == readme, "run .venv/bin/python scripts/readme_settings.py"
