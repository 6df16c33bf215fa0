{#- One row per participant and local day of the participation, from the local day of
    `start_time` to that of `end_time` (or, while the participation is open, the last
    day with any data in the marts), whether or not the day has data: counts are 0 and
    features null on days without data. -#}
{%- set sensors = [] -%}
{%- for sensor in ['gps', 'accelerometer', 'battery'] if var('avicenna__using_' ~ sensor, true) -%}
  {%- do sensors.append(sensor) -%}
{%- endfor %}

with last_day as (
    select max(local_date) as last_local_date
    from (
        select max(local_date) as local_date from {{ ref('avicenna__compliance_daily') }}
        union all
        select max(local_date) as local_date from {{ ref('avicenna__data_yield_daily') }}
    ) as latest
),

days as (
    select
        p.participant_id,
        p.start_local_date,
        p.is_dropped,
        {{ avicenna_date_series('p.start_local_date', 'coalesce(p.end_local_date, l.last_local_date)') }} as local_date
    from {{ ref('stg_avicenna__participants') }} as p
    cross join last_day as l
)

select
    d.participant_id,
    d.local_date,
    {{ dbt.datediff('d.start_local_date', 'd.local_date', 'day') }} + 1 as participation_day,
    d.is_dropped,
    coalesce(c.prompts_delivered, 0) as prompts_delivered,
    coalesce(c.prompts_answered, 0) as prompts_answered,
    c.response_rate,
    c.median_latency_seconds,
    {%- for sensor in sensors %}
    coalesce({{ sensor }}_yield.minutes_with_data, 0) as {{ sensor }}_minutes_with_data,
    coalesce({{ sensor }}_yield.hours_with_data, 0) as {{ sensor }}_hours_with_data,
    coalesce({{ sensor }}_yield.valid_hours, 0) as {{ sensor }}_valid_hours,
    {%- endfor %}
    {%- if 'gps' in sensors %}
    g.distance_meters,
    g.radius_of_gyration_meters,
    g.location_variance,
    g.log_location_variance,
    g.max_distance_from_home_meters,
    g.minutes_at_home,
    g.places,
    {%- endif %}
    {%- if 'accelerometer' in sensors %}
    a.magnitude_mean as accelerometer_magnitude_mean,
    a.magnitude_sd as accelerometer_magnitude_sd,
    {%- endif %}
    {%- if 'battery' in sensors %}
    b.level_percent_mean as battery_level_percent_mean,
    {%- endif %}
    (c.participant_id is not null
     {%- for sensor in sensors %} or {{ sensor }}_yield.participant_id is not null{% endfor %}) as has_data
from days as d
left join {{ ref('avicenna__compliance_daily') }} as c
    on c.participant_id = d.participant_id and c.local_date = d.local_date
{%- for sensor in sensors %}
left join {{ ref('avicenna__data_yield_daily') }} as {{ sensor }}_yield
    on {{ sensor }}_yield.participant_id = d.participant_id and {{ sensor }}_yield.local_date = d.local_date
    and {{ sensor }}_yield.sensor = '{{ sensor }}'
{%- endfor %}
{%- if 'gps' in sensors %}
left join {{ ref('avicenna__gps_daily') }} as g on g.participant_id = d.participant_id and g.local_date = d.local_date
{%- endif %}
{%- if 'accelerometer' in sensors %}
left join {{ ref('avicenna__accelerometer_daily') }} as a on a.participant_id = d.participant_id and a.local_date = d.local_date
{%- endif %}
{%- if 'battery' in sensors %}
left join {{ ref('avicenna__battery_daily') }} as b on b.participant_id = d.participant_id and b.local_date = d.local_date
{%- endif %}
