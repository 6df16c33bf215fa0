"""One long-lived process of the dbt-duckdb utility's Python that runs a test module's dbt
commands (dbt's programmatic API, `dbtRunner`) and SQL on the module's DuckDB file: dbt
starts once per module instead of once per command (~5.5 s each).

Run as a script by that Python (the tests' environment has neither dbt nor duckdb), it
answers JSON lines on stdin with JSON lines on stdout, one at a time, and exits at EOF.
Imported by the tests, `DbtSession` starts it and talks to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import queue
import subprocess
import sys
import threading
import traceback
import typing as t
from pathlib import Path

TIMEOUT_SECONDS = 600  # one dbt command or query; a hung server fails the test, not the suite


class DbtSession:
    """The server, started with `env` added to this process's environment and `project`
    as its working directory; its stderr (and anything else it prints) goes to `log`.

    `dbt deps` replaces the project's dbt_packages folder, which every other command
    reads: sessions on the same project (xdist workers) run it alone, under an exclusive
    lock of the project folder, and other commands under a shared one."""

    def __init__(self, python: Path, project: Path, env: t.Mapping[str, str], log: Path) -> None:
        self.log = log
        self.project_lock = os.open(project, os.O_RDONLY)
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                # -I: the folder of this script is not on the server's sys.path
                [str(python), "-I", str(Path(__file__).resolve())],
                cwd=project,
                env={**os.environ, **env},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.answers: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_answers, daemon=True).start()

    def _read_answers(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.answers.put(line)
        self.answers.put(None)  # EOF: the server has ended

    def _ask(self, request: dict[str, t.Any]) -> dict[str, t.Any]:
        assert self.process.stdin is not None
        what = json.dumps(request)[:200]
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            line = self.answers.get(timeout=TIMEOUT_SECONDS)
        except BrokenPipeError:
            line = None
        except queue.Empty:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"the dbt session gave no answer to {what} in {TIMEOUT_SECONDS} s;"
                f" its stderr:\n{self._log_tail()}"
            ) from None
        if line is None:
            code = self.process.wait()
            raise AssertionError(
                f"the dbt session ended (exit {code}) before answering {what};"
                f" its stderr:\n{self._log_tail()}"
            )
        return t.cast(dict[str, t.Any], json.loads(line))

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def dbt(self, *args: str) -> str:
        """`dbt --no-use-colors <args>`: dbt's console output; fails the test with that
        output when dbt fails."""
        ok, output = self.dbt_outcome(*args)
        assert ok, f"dbt {' '.join(args)} failed:\n{output[-6000:]}"
        return output

    def dbt_outcome(self, *args: str) -> tuple[bool, str]:
        """`dbt --no-use-colors <args>`: whether it succeeded, and its console output."""
        fcntl.flock(self.project_lock, fcntl.LOCK_EX if args[0] == "deps" else fcntl.LOCK_SH)
        try:
            answer = self._ask({"dbt": ["--no-use-colors", *args]})
        finally:
            fcntl.flock(self.project_lock, fcntl.LOCK_UN)
        return bool(answer["ok"]), t.cast(str, answer["output"])

    def sql(self, sql: str, write: bool) -> list[dict[str, t.Any]]:
        """Rows of `sql` on the DuckDB file of the profile (`DBT_DUCKDB_PATH`), run in a
        read-only transaction unless `write`; values that JSON lacks as their text."""
        answer = self._ask({"sql": sql, "write": write})
        assert answer["ok"], f"{sql} failed:\n{answer['output']}"
        return t.cast(list[dict[str, t.Any]], answer["rows"])

    def close(self) -> None:
        """Ends the server (EOF on its stdin) and waits for it."""
        assert self.process.stdin is not None
        os.close(self.project_lock)
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"the dbt session did not end at EOF; its stderr:\n{self._log_tail()}"
            ) from None


# --- the server, in the dbt-duckdb utility's Python -------------------------------------


def serve() -> None:
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever else writes to stdout goes to the log, not into the answers
    import duckdb
    from dbt.cli.main import dbtRunner

    runner = dbtRunner()

    def run_dbt(args: list[str]) -> dict[str, t.Any]:
        # dbt's console logger writes to the sys.stdout of the time the command starts
        with contextlib.redirect_stdout(io.StringIO()) as output:
            result = runner.invoke(args)
        text = output.getvalue()
        if result.exception is not None:
            text += "".join(traceback.format_exception(result.exception))
        return {"ok": result.success, "output": text}

    def run_sql(sql: str, write: bool) -> dict[str, t.Any]:
        # the profile's file and configuration: the DuckDB instance dbt keeps open between
        # commands (a connection with another configuration, read_only=True, is refused)
        with duckdb.connect(os.environ["DBT_DUCKDB_PATH"]) as db:
            db.execute("begin transaction" if write else "begin transaction read only")
            cursor = db.execute(sql)
            names = [d[0] for d in cursor.description] if cursor.description else []
            rows = (
                [dict(zip(names, row, strict=True)) for row in cursor.fetchall()] if names else []
            )
            db.execute("commit")
        return {"ok": True, "rows": rows}

    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = (
                run_dbt(request["dbt"])
                if "dbt" in request
                else run_sql(request["sql"], request["write"])
            )
        except Exception:
            answer = {"ok": False, "output": traceback.format_exc()}
        answers.write(json.dumps(answer, default=str) + "\n")
        answers.flush()
    # EOF: the answers are flushed and every write committed (in the file or its WAL,
    # which dbt's still open DuckDB keeps); skips the teardown of dbt's modules, ~0.8 s
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    serve()
