{{ config(enabled=var('avicenna__using_gps', true)) }}
{#- Each participant's home: the grid cell (avicenna_lat_cell / avicenna_lon_cell) with
    the most valid night-time fixes over all their data (ties: the lowest cell), at the
    mean position of those fixes. Participants without night fixes have no home. -#}

with night as (
    select
        participant_id,
        latitude,
        longitude,
        {{ avicenna_lat_cell('latitude') }} as lat_cell,
        {{ avicenna_lon_cell('latitude', 'longitude') }} as lon_cell
    from {{ ref('stg_avicenna__gps') }}
    where {{ avicenna_is_valid_fix() }} and {{ avicenna_is_night('local_time') }}
),

cells as (
    select
        participant_id,
        lat_cell,
        lon_cell,
        count(*) as night_fixes,
        avg(latitude) as latitude,
        avg(longitude) as longitude
    from night
    group by participant_id, lat_cell, lon_cell
),

ranked as (
    select
        *,
        row_number() over (
            partition by participant_id order by night_fixes desc, lat_cell, lon_cell
        ) as rank_in_participant
    from cells
)

select
    participant_id,
    lat_cell as home_lat_cell,
    lon_cell as home_lon_cell,
    {#- rounded to 1e-6 degrees (0.1 m): a stable value to tell when the home moved -#}
    cast(cast(latitude as decimal(12, 6)) as double precision) as home_latitude,
    cast(cast(longitude as decimal(12, 6)) as double precision) as home_longitude,
    night_fixes
from ranked
where rank_in_participant = 1
