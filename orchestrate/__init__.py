"""Running tap-avicenna's shards in parallel: a Dagster code location (definitions.py),
its shard plan read from meltano.yml (plan.py), resharding (reshard.py) and a
Kubernetes manifest (k8s/). See README, "Scaling out"."""
