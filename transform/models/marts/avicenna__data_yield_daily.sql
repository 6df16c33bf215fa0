{{ config(
    materialized='incremental',
    unique_key=['participant_id', 'local_date', 'sensor'],
    incremental_strategy='delete+insert',
) }}
{#- Sensor data yield per participant, local day and sensor (RAPIDS' phone data yield):
    the day's minutes and hours, counted in elapsed time from the UTC instant of its
    local midnight (23, 24 or 25 of them), that have at least one reading. An hour is
    valid with at least var('avicenna_valid_hour_min_minutes') minutes with data; the
    ratios divide by the day's real length. No sensor enabled: no rows. -#}
{%- set sensors = [] -%}
{%- for sensor in ['gps', 'accelerometer', 'battery'] if var('avicenna__using_' ~ sensor, true) -%}
  {%- do sensors.append(sensor) -%}
{%- endfor %}
{%- set ts = dbt.type_timestamp() %}

with readings as (
    {%- for sensor in sensors %}
    select '{{ sensor }}' as sensor, participant_id, local_date, record_time, _loaded_at
    {%- set this_sensor = "sensor = '" ~ sensor ~ "'" %}
    from {{ avicenna_rows_to_build(
        ref('stg_avicenna__' ~ sensor), avicenna_new_sensor_days('sensor_' ~ sensor, this_sensor)
    ) }} as sensor_readings
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as sensor,
        cast(null as bigint) as participant_id,
        cast(null as date) as local_date,
        cast(null as {{ ts }}) as record_time,
        cast(null as {{ ts }}) as _loaded_at
    where 1 = 0
    {%- endfor %}
),

{#- a UTC minute is a local minute: zone offsets are whole minutes #}
minutes as (
    select
        sensor,
        participant_id,
        local_date,
        date_trunc('minute', record_time) as minute_start,
        count(*) as readings,
        max(_loaded_at) as _loaded_at
    from readings
    group by 1, 2, 3, 4
),

days as (
    select
        local_date,
        {{ avicenna_day_start('local_date') }} as day_start,
        {{ avicenna_day_hours('local_date') }} as day_hours
    from (select distinct local_date from minutes) as dates
),

hours as (
    select
        minutes.sensor,
        minutes.participant_id,
        minutes.local_date,
        days.day_hours,
        floor({{ avicenna_seconds_between('days.day_start', 'minutes.minute_start') }} / 3600) as hour_of_day,
        count(*) as minutes_with_data,
        sum(minutes.readings) as readings,
        max(minutes._loaded_at) as _loaded_at
    from minutes
    inner join days on days.local_date = minutes.local_date
    group by 1, 2, 3, 4, 5
),

final as (
    select
        participant_id,
        local_date,
        sensor,
        day_hours,
        cast(sum(readings) as bigint) as readings,
        cast(sum(minutes_with_data) as bigint) as minutes_with_data,
        count(*) as hours_with_data,
        cast(sum(case when minutes_with_data >= {{ var('avicenna_valid_hour_min_minutes', 30) }} then 1 else 0 end)
            as bigint) as valid_hours,
        max(_loaded_at) as _loaded_at
    from hours
    group by participant_id, local_date, sensor, day_hours
)

select
    participant_id,
    local_date,
    sensor,
    cast(day_hours as double precision) as day_hours,
    readings,
    minutes_with_data,
    hours_with_data,
    valid_hours,
    cast(valid_hours as double precision) / day_hours as valid_hour_ratio,
    cast(minutes_with_data as double precision) / (60 * day_hours) as minute_ratio,
    _loaded_at
from final
