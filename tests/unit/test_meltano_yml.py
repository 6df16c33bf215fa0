"""meltano.yml declares every setting of the tap with its description, generated from
the tap's schema, and its dev environment needs nothing but the README's two servers."""

from pathlib import Path

import yaml
from singer_sdk.helpers.capabilities import BATCH_CONFIG, FLATTENING_CONFIG, STREAM_MAPS_CONFIG

from tap_avicenna.settings import CONFIG_SCHEMA
from tests.unit.test_readme import readme_settings

# singer-sdk adds its own settings to the schema of an instantiated tap (in place).
SDK_SETTINGS = {
    name
    for config in (BATCH_CONFIG, FLATTENING_CONFIG, STREAM_MAPS_CONFIG)
    for name in config["properties"]
}

ROOT = Path(__file__).resolve().parents[2]


def project() -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load((ROOT / "meltano.yml").read_text()))


def test_given_meltano_yml_when_compared_with_settings_schema_then_same_settings() -> None:
    extractor = project()["plugins"]["extractors"][0]
    declared = {s["name"]: s for s in extractor["settings"]}
    assert set(declared) - {"batch_config"} == set(CONFIG_SCHEMA["properties"]) - SDK_SETTINGS
    assert declared["batch_config"]["kind"] == "object"  # singer-sdk's, for BATCH files
    assert declared["api_key"].get("sensitive") is True
    for name, spec in CONFIG_SCHEMA["properties"].items():
        if name in declared:
            assert declared[name]["description"] == spec["description"], name
            if "default" in spec:
                assert str(declared[name]["value"]) == str(spec["default"]), name
    assert extractor["settings_group_validation"] == [CONFIG_SCHEMA["required"]]
    assert extractor["namespace"] == "tap_avicenna"
    assert project()["send_anonymous_usage_stats"] is False
    loaders = {loader["name"]: loader for loader in project()["plugins"]["loaders"]}
    for loader in loaders.values():  # an inherited loader (the fast path's) is its parent's
        installed = loaders[loader.get("inherit_from", loader["name"])]
        assert "namespace" in installed and "==" in installed["pip_url"]


def test_given_meltano_yml_when_regenerated_from_about_then_unchanged() -> None:
    module = readme_settings()
    text = (ROOT / "meltano.yml").read_text()
    rendered = module.render(
        text, module.MELTANO_SETTINGS, module.meltano_settings(module.about("json"))
    )
    assert rendered == text, "run .venv/bin/python scripts/readme_settings.py"


def test_given_dev_environment_then_target_postgres_needs_no_password_variable() -> None:
    """The dev environment loads into the server the README starts (`PGTEST_PORT=55432
    bash scripts/pg-test.sh start`: user tap, password tap, database tapdb) without
    TARGET_POSTGRES_PASSWORD; tests/e2e/test_readme_commands.py runs it."""
    dev = next(e for e in project()["environments"] if e["name"] == "dev")
    loaders = {p["name"]: p["config"] for p in dev["config"]["plugins"]["loaders"]}
    postgres = next(p for p in project()["plugins"]["loaders"] if p["name"] == "target-postgres")
    config = {**postgres["config"], **loaders["target-postgres"]}
    assert (config["host"], config["port"], config["user"]) == ("127.0.0.1", 55432, "tap")
    assert (config["password"], config["database"]) == ("tap", "tapdb")
    readme = (ROOT / "README.md").read_text()
    assert "PGTEST_PORT=55432 bash scripts/pg-test.sh start" in readme
