"""The README's generated parts are what `tap-avicenna --about --format=markdown` prints."""

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def readme_settings() -> ModuleType:
    """scripts/readme_settings.py, which writes the generated parts."""
    script = ROOT / "scripts/readme_settings.py"
    spec = importlib.util.spec_from_file_location("readme_settings", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_given_readme_when_compared_with_about_then_settings_and_data_sources_current() -> None:
    module = readme_settings()
    markdown = module.about("markdown")
    table = module.settings_table(markdown)
    assert "| username | True |" in table and "| strict_settings | False |" in table
    sources = module.data_sources_section(markdown)
    assert "| `gps` | " in sources and "lat (number)" in sources
    readme = (ROOT / "README.md").read_text()
    rendered = module.render(readme, module.SETTINGS, table)
    rendered = module.render(rendered, module.DATA_SOURCES, sources)
    assert rendered == readme, "run .venv/bin/python scripts/readme_settings.py"
