{{ config(
    enabled=var('avicenna__using_battery', true),
    materialized='incremental',
    unique_key=['participant_id', 'local_date'],
    incremental_strategy='delete+insert',
) }}
{#- Battery level (percent of `scale`; the raw level when there is no scale) and
    charging per participant and local day. -#}

with readings as (
    select
        participant_id,
        local_date,
        100 * level / coalesce(nullif(scale, 0), 100) as level_percent,
        coalesce(plugged, 0) <> 0 as is_plugged,
        _loaded_at
    from {{ avicenna_rows_to_build(ref('stg_avicenna__battery'), avicenna_new_sensor_days('sensor_battery')) }} as battery
)

select
    participant_id,
    local_date,
    count(*) as readings,
    cast(avg(level_percent) as double precision) as level_percent_mean,
    cast(min(level_percent) as double precision) as level_percent_min,
    cast(max(level_percent) as double precision) as level_percent_max,
    cast(sum(case when is_plugged then 1 else 0 end) as double precision) / count(*) as plugged_ratio,
    max(_loaded_at) as _loaded_at
from readings
group by participant_id, local_date
