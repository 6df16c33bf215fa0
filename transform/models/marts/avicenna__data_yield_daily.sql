{{ config(
    materialized='incremental',
    unique_key=['participant_id', 'local_date', 'sensor'],
    incremental_strategy='delete+insert',
) }}
{#- Sensor data yield per participant, local day and sensor: which minutes and hours
    have at least one reading. An hour is valid with at least
    var('avicenna_valid_hour_min_minutes') minutes with data. -#}
{%- set sensors = [] -%}
{%- for sensor in ['gps', 'accelerometer', 'battery'] if var('avicenna__using_' ~ sensor, true) -%}
  {%- do sensors.append(sensor) -%}
{%- endfor %}

with readings as (
    {%- for sensor in sensors %}
    select '{{ sensor }}' as sensor, participant_id, local_date, local_time, _loaded_at
    {%- set this_sensor = "sensor = '" ~ sensor ~ "'" %}
    from {{ avicenna_rows_to_build(
        ref('stg_avicenna__' ~ sensor), avicenna_new_sensor_days('sensor_' ~ sensor, this_sensor)
    ) }} as r
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

minutes as (
    select
        sensor,
        participant_id,
        local_date,
        date_trunc('hour', local_time) as hour_start,
        date_trunc('minute', local_time) as minute_start,
        count(*) as readings,
        max(_loaded_at) as _loaded_at
    from readings
    group by 1, 2, 3, 4, 5
),

hours as (
    select
        sensor,
        participant_id,
        local_date,
        hour_start,
        count(*) as minutes_with_data,
        sum(readings) as readings,
        max(_loaded_at) as _loaded_at
    from minutes
    group by 1, 2, 3, 4
)

select
    participant_id,
    local_date,
    sensor,
    cast(sum(readings) as bigint) as readings,
    cast(sum(minutes_with_data) as bigint) as minutes_with_data,
    count(*) as hours_with_data,
    cast(sum(case when minutes_with_data >= {{ var('avicenna_valid_hour_min_minutes', 1) }} then 1 else 0 end) as bigint)
        as valid_hours,
    cast(sum(case when minutes_with_data >= {{ var('avicenna_valid_hour_min_minutes', 1) }} then 1 else 0 end)
        as double precision) / 24 as valid_hour_ratio,
    cast(sum(minutes_with_data) as double precision) / 1440 as minute_ratio,
    max(_loaded_at) as _loaded_at
from hours
group by participant_id, local_date, sensor
