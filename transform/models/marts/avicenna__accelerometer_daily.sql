{{ config(
    enabled=var('avicenna__using_accelerometer', true),
    materialized='incremental',
    unique_key=['participant_id', 'local_date'],
    incremental_strategy='delete+insert',
) }}
{#- Acceleration magnitude sqrt(x² + y² + z²) (m/s², gravity included) per participant
    and local day. -#}

with readings as (
    select
        participant_id,
        local_date,
        sqrt(power(x_axis, 2) + power(y_axis, 2) + power(z_axis, 2)) as magnitude,
        _loaded_at
    from {{ avicenna_rows_to_build(ref('stg_avicenna__accelerometer'), avicenna_new_sensor_days('sensor_accelerometer')) }} as accelerometer
)

select
    participant_id,
    local_date,
    count(*) as readings,
    cast(avg(magnitude) as double precision) as magnitude_mean,
    cast(stddev_samp(magnitude) as double precision) as magnitude_sd,
    cast(min(magnitude) as double precision) as magnitude_min,
    cast(percentile_cont(0.5) within group (order by magnitude) as double precision) as magnitude_median,
    cast(max(magnitude) as double precision) as magnitude_max,
    max(_loaded_at) as _loaded_at
from readings
group by participant_id, local_date
