"""meltano.yml declares every setting of the tap, and the secret one as sensitive."""

from pathlib import Path

import yaml
from singer_sdk.helpers.capabilities import BATCH_CONFIG, FLATTENING_CONFIG, STREAM_MAPS_CONFIG

from tap_avicenna.settings import CONFIG_SCHEMA

# singer-sdk adds its own settings to the schema of an instantiated tap (in place).
SDK_SETTINGS = {
    name
    for config in (BATCH_CONFIG, FLATTENING_CONFIG, STREAM_MAPS_CONFIG)
    for name in config["properties"]
}

ROOT = Path(__file__).resolve().parents[2]


def test_given_meltano_yml_when_compared_with_settings_schema_then_same_settings() -> None:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    extractor = project["plugins"]["extractors"][0]
    declared = {s["name"]: s for s in extractor["settings"]}
    assert set(declared) - {"batch_config"} == set(CONFIG_SCHEMA["properties"]) - SDK_SETTINGS
    assert declared["batch_config"]["kind"] == "object"  # singer-sdk's, for BATCH files
    assert declared["api_key"].get("sensitive") is True
    assert extractor["namespace"] == "tap_avicenna"
    assert project["send_anonymous_usage_stats"] is False
    for loader in project["plugins"]["loaders"]:
        assert "namespace" in loader and "==" in loader["pip_url"]
