{{ config(
    enabled=var('avicenna__using_gps', true),
    materialized='incremental',
    unique_key=['participant_id', 'local_date'],
    incremental_strategy='delete+insert',
) }}
{#- Daily mobility features per participant and local day (README "Formulas", GPS), from
    the valid fixes (avicenna_is_valid_fix) in UTC time order. The day runs from the UTC
    instant of its local midnight to that of the next (23, 24 or 25 hours). Each fix
    stands for the time to the next fix of the day (or to the day's end), and for none
    when that is longer than the maximum gap (RAPIDS). A fix is moving when its speed to
    the next fix reaches the static threshold (RAPIDS Doryab); distance adds the moving
    steps only; pauses (runs of stationary fixes of a minimum duration) merge into places
    within a radius (Barnett). Every feature depends on the day's fixes and on the
    participant's home (avicenna__gps_home): an incremental build recomputes the days
    with new fixes, and every day of a participant whose home moved. -#}
{%- set home_moved_days -%}
    select built_day.participant_id, built_day.local_date
    from {{ this }} as built_day
    inner join {{ ref('avicenna__gps_home') }} as home on home.participant_id = built_day.participant_id
    where built_day.valid_fixes > 0
      and (built_day.home_latitude is null or built_day.home_latitude <> home.home_latitude
           or built_day.home_longitude <> home.home_longitude)
{%- endset -%}
{%- set max_gap_seconds = var('avicenna_gps_max_gap_minutes', 15) * 60 -%}
{%- set static_meters_per_second = var('avicenna_gps_static_speed_kmh', 1) / 3.6 -%}
{%- set pause_min_seconds = var('avicenna_place_min_minutes', 10) * 60 %}

with fixes as (
    select *
    from {{ avicenna_rows_to_build(
        ref('stg_avicenna__gps'), avicenna_new_sensor_days('sensor_gps'), home_moved_days
    ) }} as gps
),

days as (
    select
        participant_id,
        local_date,
        count(*) as fixes,
        max(_loaded_at) as _loaded_at,
        {{ avicenna_day_hours('local_date') }} * 60 as day_minutes
    from fixes
    group by participant_id, local_date
),

ordered as (
    select
        participant_id,
        local_date,
        row_id,
        record_time,
        latitude,
        longitude,
        lead(latitude) over day_order as next_latitude,
        lead(longitude) over day_order as next_longitude,
        lead(record_time) over day_order as next_time,
        {{ avicenna_day_end('local_date') }} as day_end
    from fixes
    where {{ avicenna_is_valid_fix() }}
    window day_order as (partition by participant_id, local_date order by record_time, row_id)
),

{#- the time to the next fix of the day, or to the day's end for its last fix -#}
gaps as (
    select
        *,
        {{ avicenna_seconds_between('record_time', 'coalesce(next_time, day_end)') }} as gap_seconds,
        case
            when next_latitude is not null
                then {{ avicenna_haversine_meters('latitude', 'longitude', 'next_latitude', 'next_longitude') }}
        end as step_meters
    from ordered
),

{#- moving: a step to the next fix within the maximum gap at the static speed or faster
    (a fix at the same instant as the next, or the day's last, has no speed) -#}
classified as (
    select
        *,
        case when gap_seconds <= {{ max_gap_seconds }} then gap_seconds else 0 end as duration_seconds,
        coalesce(
            next_time is not null
            and gap_seconds > 0
            and gap_seconds <= {{ max_gap_seconds }}
            and step_meters >= {{ static_meters_per_second }} * gap_seconds,
            false
        ) as is_moving
    from gaps
),

{#- a pause: the stationary fixes between two moving ones (run_number: moving fixes so far) -#}
runs as (
    select
        *,
        sum(case when is_moving then 1 else 0 end) over (
            partition by participant_id, local_date order by record_time, row_id
            rows between unbounded preceding and current row
        ) as run_number
    from classified
),

pauses as (
    select
        participant_id,
        local_date,
        run_number,
        sum(duration_seconds) as pause_seconds,
        sum(duration_seconds * latitude) / sum(duration_seconds) as pause_latitude,
        sum(duration_seconds * longitude) / sum(duration_seconds) as pause_longitude
    from runs
    where not is_moving
    group by participant_id, local_date, run_number
    having sum(duration_seconds) >= {{ pause_min_seconds }} and sum(duration_seconds) > 0
),

{#- a place: a pause with no longer pause (ties: the earlier) within the radius of its
    centroid; every other pause belongs to the place of such a longer one -#}
places as (
    select participant_id, local_date, count(*) as places
    from pauses as pause
    where not exists (
        select 1
        from pauses as longer
        where longer.participant_id = pause.participant_id
          and longer.local_date = pause.local_date
          and (longer.pause_seconds > pause.pause_seconds
               or (longer.pause_seconds = pause.pause_seconds and longer.run_number < pause.run_number))
          and {{ avicenna_haversine_meters(
                'pause.pause_latitude', 'pause.pause_longitude',
                'longer.pause_latitude', 'longer.pause_longitude') }}
              <= {{ var('avicenna_place_radius_meters', 200) }}
    )
    group by participant_id, local_date
),

{#- the time-weighted centroid of the day -#}
centroids as (
    select
        participant_id,
        local_date,
        sum(duration_seconds * latitude) / nullif(sum(duration_seconds), 0) as centroid_latitude,
        sum(duration_seconds * longitude) / nullif(sum(duration_seconds), 0) as centroid_longitude
    from classified
    group by participant_id, local_date
),

measured as (
    select
        fix.*,
        home.home_latitude,
        home.home_longitude,
        case
            when home.home_latitude is not null
                then {{ avicenna_haversine_meters('fix.latitude', 'fix.longitude', 'home.home_latitude', 'home.home_longitude') }}
        end as home_distance_meters,
        case
            when centroid.centroid_latitude is not null
                then {{ avicenna_haversine_meters('fix.latitude', 'fix.longitude', 'centroid.centroid_latitude', 'centroid.centroid_longitude') }}
        end as centroid_distance_meters
    from classified as fix
    inner join centroids as centroid
        on centroid.participant_id = fix.participant_id and centroid.local_date = fix.local_date
    left join {{ ref('avicenna__gps_home') }} as home on home.participant_id = fix.participant_id
),

features as (
    select
        participant_id,
        local_date,
        count(*) as valid_fixes,
        sum(case when is_moving then step_meters else 0 end) as distance_meters,
        {#- below (1e-7 degrees)², ~1 cm: fixes at one point, whose variance comes out as
            ~1e-26 or 0 by the order of the database's float sums -#}
        case
            when var_pop(latitude) + var_pop(longitude) >= 1e-14 then var_pop(latitude) + var_pop(longitude)
            else 0
        end as location_variance,
        sqrt(
            sum(duration_seconds * power(centroid_distance_meters, 2)) / nullif(sum(duration_seconds), 0)
        ) as radius_of_gyration_meters,
        max(home_distance_meters) as max_distance_from_home_meters,
        case
            when max(home_latitude) is not null
                then sum(case when home_distance_meters <= {{ var('avicenna_home_radius_meters', 100) }} then duration_seconds else 0 end) / 60
        end as minutes_at_home,
        sum(duration_seconds) / 60 as minutes_covered,
        sum(case when is_moving then duration_seconds else 0 end) / 60 as minutes_moving,
        max(home_latitude) as home_latitude,
        max(home_longitude) as home_longitude
    from measured
    group by participant_id, local_date
),

final as (
    select
        days.participant_id,
        days.local_date,
        days.fixes,
        coalesce(features.valid_fixes, 0) as valid_fixes,
        cast(features.distance_meters as double precision) as distance_meters,
        cast(features.location_variance as double precision) as location_variance,
        cast(ln(nullif(features.location_variance, 0)) as double precision) as log_location_variance,
        cast(features.radius_of_gyration_meters as double precision) as radius_of_gyration_meters,
        cast(features.max_distance_from_home_meters as double precision) as max_distance_from_home_meters,
        cast(features.minutes_at_home as double precision) as minutes_at_home,
        cast(features.minutes_covered as double precision) as minutes_covered,
        cast(features.minutes_moving as double precision) as minutes_moving,
        cast(days.day_minutes as double precision) as day_minutes,
        cast(features.minutes_covered / days.day_minutes as double precision) as covered_ratio,
        case when features.valid_fixes is not null then coalesce(places.places, 0) end as places,
        features.home_latitude,
        features.home_longitude,
        days._loaded_at
    from days
    left join features on features.participant_id = days.participant_id and features.local_date = days.local_date
    left join places on places.participant_id = days.participant_id and places.local_date = days.local_date
)

select * from final
