"""The Kubernetes manifests of orchestrate/k8s/, checked statically (no cluster here)."""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

import yaml

K8S = Path(__file__).resolve().parents[2] / "orchestrate" / "k8s"


def load(name: str) -> dict[str, t.Any]:
    manifest = yaml.safe_load((K8S / name).read_text(encoding="utf-8"))
    assert manifest["apiVersion"] == "batch/v1" and manifest["kind"] == "Job", name
    return dict(manifest)


def env_of(container: t.Mapping[str, t.Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def test_the_shards_are_an_indexed_job_retried_per_index_without_two_pods_at_once() -> None:
    spec = load("shards-job.yaml")["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["backoffLimitPerIndex"] >= 1 and spec["maxFailedIndexes"] == 0
    assert spec["podReplacementPolicy"] == "Failed"
    assert "backoffLimit" not in spec  # the per-index limit replaces it
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # backoffLimitPerIndex requires it
    (container,) = pod["containers"]
    count = int(env_of(container)["SHARD_COUNT"])
    assert spec["completions"] == count and spec["parallelism"] <= count
    assert {"secretRef": {"name": "avicenna"}} in container["envFrom"]
    script = (K8S.parents[1] / container["command"][-1]).read_text(encoding="utf-8")
    assert 'TAP_AVICENNA_SHARD_INDEX="$JOB_COMPLETION_INDEX"' in script
    assert re.search(r'--state-id-suffix "shard\$JOB_COMPLETION_INDEX"', script)
    assert 'TAP_AVICENNA_SHARD_COUNT="$SHARD_COUNT"' in script
    assert "MELTANO_DATABASE_URI" in script


def test_dbt_is_a_job_of_its_own_through_meltanos_dbt_utility() -> None:
    spec = load("dbt-job.yaml")["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    assert container["command"] == ["meltano", "invoke", "dbt-postgres", "build"]
    shards = load("shards-job.yaml")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == shards["image"]
    assert container["envFrom"] == shards["envFrom"]
    assert env_of(container)["MELTANO_ENVIRONMENT"] == env_of(shards)["MELTANO_ENVIRONMENT"]
