"""Dagster code location: tap-avicenna's shards in parallel, each retried alone, then dbt.

    dagster dev -f orchestrate/definitions.py      # or: bash scripts/orchestrate.sh --ui

One op per shard plugin of meltano.yml runs `meltano run tap-avicenna--shard<k>
target-postgres` through `dagster.PipesSubprocessClient`; the multiprocess executor
runs them all at once (`max_concurrent` = the shard count: its default is the CPU
count). A failed shard is retried by its RetryPolicy with `--force`: a SIGKILLed
`meltano` keeps its state id locked for 5 minutes, and the retry is the only runner of
that shard. The dbt op runs meltano's dbt-postgres utility once every shard has loaded.
The state is meltano's: point MELTANO_DATABASE_URI at one PostgreSQL database so that
any worker resumes any shard (README, "Scaling out").
"""

import os
import time

import dagster as dg

from orchestrate.plan import LOADER, ROOT, Shard, plan_shards

SHARDS = plan_shards()
RETRIES = 2


class Meltano(dg.ConfigurableResource):  # type: ignore[misc]
    """Where and how `meltano` runs; its other settings come from the environment."""

    executable: str = str(ROOT / ".venv" / "bin" / "meltano")
    project_dir: str = str(ROOT)
    environment: str = "dev"

    def command(self, *args: str) -> list[str]:
        return [self.executable, "--environment", self.environment, *args]


def _run(
    context: dg.OpExecutionContext,
    pipes: dg.PipesSubprocessClient,
    meltano: Meltano,
    args: list[str],
) -> dg.Output[None]:
    started = time.time()
    env = {
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
    }
    pipes.run(command=meltano.command(*args), context=context, cwd=meltano.project_dir, env=env)
    return dg.Output(
        None,
        metadata={
            "command": " ".join(["meltano", *args]),
            "seconds": round(time.time() - started, 2),
            "attempt": context.retry_number + 1,
        },
    )


@dg.op(out=dg.Out(dg.Nothing))
def system_database(
    context: dg.OpExecutionContext, pipes: dg.PipesSubprocessClient, meltano: Meltano
) -> dg.Output[None]:
    """Meltano's system database migrated once, before the shards: three `meltano run`s
    migrating a new database at once collide (`duplicate key ... alembic_version`)."""
    return _run(context, pipes, meltano, ["upgrade", "database"])


def shard_op(shard: Shard) -> dg.OpDefinition:
    """The op that loads one shard; `--force` on a retry only."""

    @dg.op(
        name=f"shard_{shard.index}",
        ins={"database": dg.In(dg.Nothing)},
        out=dg.Out(dg.Nothing),
        retry_policy=dg.RetryPolicy(max_retries=RETRIES, delay=1),
        tags={"shard": str(shard.index), "state_id": shard.state_id()},
    )
    def load_shard(
        context: dg.OpExecutionContext, pipes: dg.PipesSubprocessClient, meltano: Meltano
    ) -> dg.Output[None]:
        force = ["--force"] if context.retry_number > 0 else []
        return _run(context, pipes, meltano, ["run", *force, shard.plugin, LOADER])

    return load_shard


@dg.op(ins={"shards": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing))
def dbt_build(
    context: dg.OpExecutionContext, pipes: dg.PipesSubprocessClient, meltano: Meltano
) -> dg.Output[None]:
    """`dbt build` of transform/ through meltano's dbt-postgres utility, once."""
    return _run(context, pipes, meltano, ["invoke", "dbt-postgres", "build"])


SHARD_OPS = [shard_op(shard) for shard in SHARDS]


@dg.job(
    executor_def=dg.multiprocess_executor.configured({"max_concurrent": len(SHARDS)}),
    resource_defs={"pipes": dg.PipesSubprocessClient(), "meltano": Meltano()},
    description=f"{len(SHARDS)} tap-avicenna shards into PostgreSQL at once, then dbt build.",
)
def avicenna_sharded_sync() -> None:
    database = system_database()
    dbt_build(shards=[load(database=database) for load in SHARD_OPS])


nightly = dg.ScheduleDefinition(
    job=avicenna_sharded_sync,
    cron_schedule=os.environ.get("AVICENNA_SCHEDULE", "0 2 * * *"),
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

defs = dg.Definitions(jobs=[avicenna_sharded_sync], schedules=[nightly])
