"""Run `avicenna_sharded_sync` in this process (multiprocess executor, a temporary
Dagster instance) and write each step's attempts as JSON to a file, for
scripts/orchestrate.sh and tests/e2e/test_orchestrate.py (not to stdout: the ops'
commands write there too).

    orchestrate/.venv/bin/python -m orchestrate.run steps.json
"""

import json
import sys
import tempfile
import typing as t
from pathlib import Path

import dagster as dg

from orchestrate.definitions import avicenna_sharded_sync

WATCHED = {
    "STEP_START": "start",
    "STEP_RESTARTED": "start",  # a retry's start
    "STEP_SUCCESS": "success",
    "STEP_FAILURE": "failure",
    "STEP_UP_FOR_RETRY": "retry",
    "STEP_OUTPUT": "output",
}


def steps(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[dict[str, t.Any]]]:
    """Step key -> its start, retry, success and failure events, with Unix times."""
    out: dict[str, list[dict[str, t.Any]]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None or event.event_type_value not in WATCHED:
            continue
        step: dict[str, t.Any] = {"event": WATCHED[event.event_type_value], "time": entry.timestamp}
        if event.is_successful_output:
            step["metadata"] = {k: v.value for k, v in event.step_output_data.metadata.items()}
        out.setdefault(event.step_key, []).append(step)
    return out


def main(steps_json: str) -> int:
    with tempfile.TemporaryDirectory(prefix="dagster-home-") as home:
        (Path(home) / "dagster.yaml").write_text(
            (Path(__file__).with_name("dagster.yaml")).read_text(encoding="utf-8")
        )
        with dg.DagsterInstance.from_config(home) as instance:
            result = dg.execute_job(
                dg.reconstructable(avicenna_sharded_sync), instance=instance, raise_on_error=False
            )
            report = {
                "success": result.success,
                "run_id": result.run_id,
                "steps": steps(instance, result.run_id),
            }
    Path(steps_json).write_text(json.dumps(report) + "\n", encoding="utf-8")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
