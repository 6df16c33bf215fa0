"""The Meltano Hub plugin definition is what scripts/readme_settings.py generates, and has
the shape the Hub's JSON Schemas (meltano/hub: schemas/plugin_definitions/
extractors.schema.json and the common, extractors_specific, hub_metadata and
base_setting schemas it refers to) accept."""

from __future__ import annotations

import json
import typing as t

import jsonschema
import yaml

from tap_avicenna.settings import CONFIG_SCHEMA
from tests.unit.test_readme import ROOT, readme_settings

DEFINITION = ROOT / "meltano-hub" / "extractors" / "tap-avicenna" / "avicenna.yml"

_KINDS = [
    "oauth", "hidden", "password", "date_iso8601", "file", "email", "integer", "options",
    "object", "array", "boolean", "string", "decimal",
]  # fmt: skip
_CAPABILITIES = [
    "properties", "catalog", "discover", "state", "about", "stream-maps",
    "schema-flattening", "activate-version", "batch", "test", "log-based",
    "structured-logging",
]  # fmt: skip
_SETTING_KEYS = [
    "name", "aliases", "label", "value", "placeholder", "kind", "description", "tooltip",
    "documentation", "env", "value_processor", "value_post_processor", "oauth", "options",
    "docs", "hidden", "sensitive",
]  # fmt: skip
_TOP_KEYS = [
    "name", "pip_url", "variant", "namespace", "label", "description", "executable",
    "settings", "docs", "repo", "logo_url", "hidden", "python", "settings_group_validation",
    "commands", "capabilities", "metadata", "schema", "select", "maintenance_status",
    "quality", "domain_url", "keywords", "requires", "definition", "next_steps",
    "settings_preamble", "usage", "prereq", "supported_python_versions", "log_parser",
]  # fmt: skip

# The Hub's rules for an extractor definition, restated (draft-07).
HUB_EXTRACTOR_SCHEMA: dict[str, t.Any] = {
    "type": "object",
    "required": ["name", "namespace", "variant", "label", "quality"],
    "additionalProperties": False,
    "properties": {
        **{key: {} for key in _TOP_KEYS},
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "variant": {"type": "string"},
        "label": {"type": "string"},
        "description": {"type": "string"},
        "pip_url": {"type": "string"},
        "executable": {"type": "string"},
        "repo": {"type": "string"},
        "docs": {"type": "string"},
        "maintenance_status": {"enum": ["active", "beta", "development", "inactive", "unknown"]},
        "quality": {"enum": ["gold", "silver", "bronze", "unknown"]},
        "domain_url": {"type": ["string", "null"], "format": "uri"},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "capabilities": {"type": "array", "items": {"enum": _CAPABILITIES}},
        "settings_group_validation": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "string"}},
        },
        "settings": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    **{key: {} for key in _SETTING_KEYS},
                    "name": {"type": "string"},
                    "label": {"type": "string"},
                    "kind": {"enum": _KINDS},
                    "description": {"type": "string"},
                    "sensitive": {"type": "boolean"},
                },
            },
        },
    },
}


def definition() -> dict[str, t.Any]:
    return t.cast(dict[str, t.Any], yaml.safe_load(DEFINITION.read_text()))


def test_given_hub_definition_when_regenerated_then_unchanged() -> None:
    module = readme_settings()
    assert module.HUB_DEFINITION == DEFINITION
    generated = module.hub_definition(module.about("json"))
    assert generated == DEFINITION.read_text(), "run .venv/bin/python scripts/readme_settings.py"


def test_given_hub_definition_then_the_hub_schema_accepts_it() -> None:
    jsonschema.validate(definition(), HUB_EXTRACTOR_SCHEMA)


def test_given_hub_definition_then_every_setting_of_the_schema_described() -> None:
    """Every setting of the tap's schema (singer-sdk's too), with a kind, a label and a
    description; the secret ones (and only those) sensitive; the required ones are the
    group validation; the capabilities are --about's, without activate-version."""
    found = definition()
    about_info = json.loads(readme_settings().about("json"))
    properties = about_info["settings"]["properties"]
    settings = {setting["name"]: setting for setting in found["settings"]}
    assert list(settings) == list(properties)
    assert set(CONFIG_SCHEMA["properties"]) <= set(settings)
    assert all({"kind", "label", "description"} <= set(s) for s in settings.values())
    secret = {name for name, spec in properties.items() if spec.get("secret")}
    assert secret == {"api_key"}
    assert {name for name, s in settings.items() if s.get("sensitive")} == secret
    assert found["settings_group_validation"] == [about_info["settings"]["required"]]
    assert set(found["capabilities"]) == set(about_info["capabilities"])
    assert "activate-version" not in found["capabilities"]
    assert (found["name"], found["namespace"], found["executable"]) == (
        "tap-avicenna",
        "tap_avicenna",
        "tap-avicenna",
    )
    assert found["pip_url"] == f"git+{found['repo']}.git"
