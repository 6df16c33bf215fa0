{{ config(
    enabled=var('avicenna__using_gps', true),
    materialized='incremental',
    unique_key=['participant_id', 'local_date'],
    incremental_strategy='delete+insert',
) }}
{#- Daily mobility features per participant and local day, from the valid fixes
    (avicenna_is_valid_fix) in time order. Every feature depends on the day's fixes and
    on the participant's home (avicenna__gps_home): an incremental build recomputes the
    days with new fixes, and every day of a participant whose home moved. -#}
{%- set home_moved_days -%}
    select d.participant_id, d.local_date
    from {{ this }} as d
    inner join {{ ref('avicenna__gps_home') }} as h on h.participant_id = d.participant_id
    where d.valid_fixes > 0
      and (d.home_latitude is null or d.home_latitude <> h.home_latitude
           or d.home_longitude <> h.home_longitude)
{%- endset -%}
{%- set day_end = dbt.dateadd('day', 1, 'cast(local_date as ' ~ dbt.type_timestamp() ~ ')') -%}
{%- set max_gap_seconds = var('avicenna_gps_max_gap_minutes', 15) * 60 %}

with fixes as (
    select *
    from {{ avicenna_rows_to_build(
        ref('stg_avicenna__gps'), avicenna_new_sensor_days('sensor_gps'), home_moved_days
    ) }} as g
),

days as (
    select participant_id, local_date, count(*) as fixes, max(_loaded_at) as _loaded_at
    from fixes
    group by participant_id, local_date
),

ordered as (
    select
        participant_id,
        local_date,
        local_time,
        latitude,
        longitude,
        {{ avicenna_lat_cell('latitude') }} as lat_cell,
        {{ avicenna_lon_cell('latitude', 'longitude') }} as lon_cell,
        lead(latitude) over (partition by participant_id, local_date order by local_time, row_id) as next_latitude,
        lead(longitude) over (partition by participant_id, local_date order by local_time, row_id) as next_longitude,
        lead(local_time) over (partition by participant_id, local_date order by local_time, row_id) as next_time,
        {{ day_end }} as day_end
    from fixes
    where {{ avicenna_is_valid_fix() }}
),

{#- each fix stands for the time until the next one, at most the maximum gap, and not
    past the end of its day -#}
stepped as (
    select
        o.*,
        h.home_latitude,
        h.home_longitude,
        case
            when next_latitude is not null
                then {{ avicenna_haversine_meters('latitude', 'longitude', 'next_latitude', 'next_longitude') }}
        end as step_meters,
        least(
            {{ avicenna_seconds_between('local_time', 'coalesce(next_time, day_end)') }},
            {{ max_gap_seconds }},
            {{ avicenna_seconds_between('local_time', 'day_end') }}
        ) as duration_seconds,
        case
            when h.home_latitude is not null
                then {{ avicenna_haversine_meters('latitude', 'longitude', 'h.home_latitude', 'h.home_longitude') }}
        end as home_distance_meters
    from ordered as o
    left join {{ ref('avicenna__gps_home') }} as h on h.participant_id = o.participant_id
),

centroids as (
    select participant_id, local_date, avg(latitude) as centroid_latitude, avg(longitude) as centroid_longitude
    from stepped
    group by participant_id, local_date
),

places as (
    select participant_id, local_date, count(*) as places
    from (
        select participant_id, local_date, lat_cell, lon_cell
        from stepped
        group by participant_id, local_date, lat_cell, lon_cell
        having sum(duration_seconds) >= {{ var('avicenna_place_min_minutes', 10) * 60 }}
    ) as cells
    group by participant_id, local_date
),

features as (
    select
        s.participant_id,
        s.local_date,
        count(*) as valid_fixes,
        coalesce(sum(s.step_meters), 0) as distance_meters,
        var_pop(s.latitude) + var_pop(s.longitude) as location_variance,
        sqrt(avg(power({{ avicenna_haversine_meters('s.latitude', 's.longitude', 'c.centroid_latitude', 'c.centroid_longitude') }}, 2)))
            as radius_of_gyration_meters,
        max(s.home_distance_meters) as max_distance_from_home_meters,
        case
            when max(s.home_latitude) is not null
                then sum(case when s.home_distance_meters <= {{ var('avicenna_home_radius_meters', 100) }} then s.duration_seconds else 0 end) / 60
        end as minutes_at_home,
        sum(s.duration_seconds) / 60 as minutes_covered,
        max(s.home_latitude) as home_latitude,
        max(s.home_longitude) as home_longitude
    from stepped as s
    inner join centroids as c on c.participant_id = s.participant_id and c.local_date = s.local_date
    group by s.participant_id, s.local_date
)

select
    d.participant_id,
    d.local_date,
    d.fixes,
    coalesce(f.valid_fixes, 0) as valid_fixes,
    cast(f.distance_meters as double precision) as distance_meters,
    cast(f.location_variance as double precision) as location_variance,
    cast(ln(nullif(f.location_variance, 0)) as double precision) as log_location_variance,
    cast(f.radius_of_gyration_meters as double precision) as radius_of_gyration_meters,
    cast(f.max_distance_from_home_meters as double precision) as max_distance_from_home_meters,
    cast(f.minutes_at_home as double precision) as minutes_at_home,
    cast(f.minutes_covered as double precision) as minutes_covered,
    case when f.valid_fixes is not null then coalesce(p.places, 0) end as places,
    f.home_latitude,
    f.home_longitude,
    d._loaded_at
from days as d
left join features as f on f.participant_id = d.participant_id and f.local_date = d.local_date
left join places as p on p.participant_id = d.participant_id and p.local_date = d.local_date
