{#- One row per participant and local day of the participation inside the synced
    window, whether or not the day has data: counts are 0 and features null on days
    without data. The participation runs from the local day of `start_time` to that of
    `end_time`, or to the window's end while it is open; the synced window runs from the
    first to the last local day with any data in the marts (days outside it were not
    synced: no data there is not non-compliance). -#}
{%- set sensors = [] -%}
{%- for sensor in ['gps', 'accelerometer', 'battery'] if var('avicenna__using_' ~ sensor, true) -%}
  {%- do sensors.append(sensor) -%}
{%- endfor %}

with synced_window as (
    select min(first_local_date) as first_local_date, max(last_local_date) as last_local_date
    from (
        select min(local_date) as first_local_date, max(local_date) as last_local_date
        from {{ ref('avicenna__compliance_daily') }}
        union all
        select min(local_date) as first_local_date, max(local_date) as last_local_date
        from {{ ref('avicenna__data_yield_daily') }}
    ) as data_days
),

participation as (
    select
        participants.participant_id,
        participants.start_local_date,
        participants.is_dropped,
        case
            when participants.start_local_date > synced_window.first_local_date
                then participants.start_local_date
            else synced_window.first_local_date
        end as first_local_date,
        case
            when participants.end_local_date < synced_window.last_local_date
                then participants.end_local_date
            else synced_window.last_local_date
        end as last_local_date
    from {{ ref('stg_avicenna__participants') }} as participants
    cross join synced_window
),

days as (
    select
        participant_id,
        start_local_date,
        is_dropped,
        {{ avicenna_date_series('first_local_date', 'last_local_date') }} as local_date
    from participation
    where first_local_date <= last_local_date
),

provisional_days as (
    select participant_id, local_date
    from {{ ref('avicenna__compliance_survey_daily') }}
    where is_provisional
    group by participant_id, local_date
)

select
    days.participant_id,
    days.local_date,
    {{ dbt.datediff('days.start_local_date', 'days.local_date', 'day') }} + 1 as participation_day,
    cast({{ avicenna_day_hours('days.local_date') }} as double precision) as day_hours,
    days.is_dropped,
    coalesce(compliance.prompts_delivered, 0) as prompts_delivered,
    coalesce(compliance.prompts_answered, 0) as prompts_answered,
    coalesce(compliance.prompts_unanswered, 0) as prompts_unanswered,
    compliance.response_rate,
    compliance.median_seconds_to_start,
    compliance.median_seconds_to_submit,
    pending.participant_id is not null as is_provisional,
    {%- for sensor in sensors %}
    coalesce({{ sensor }}_yield.minutes_with_data, 0) as {{ sensor }}_minutes_with_data,
    coalesce({{ sensor }}_yield.hours_with_data, 0) as {{ sensor }}_hours_with_data,
    coalesce({{ sensor }}_yield.valid_hours, 0) as {{ sensor }}_valid_hours,
    {%- endfor %}
    {%- if 'gps' in sensors %}
    gps.distance_meters,
    gps.radius_of_gyration_meters,
    gps.location_variance,
    gps.log_location_variance,
    gps.max_distance_from_home_meters,
    gps.minutes_at_home,
    gps.places,
    {%- endif %}
    {%- if 'accelerometer' in sensors %}
    accelerometer.magnitude_mean as accelerometer_magnitude_mean,
    accelerometer.magnitude_sd as accelerometer_magnitude_sd,
    {%- endif %}
    {%- if 'battery' in sensors %}
    battery.level_percent_mean as battery_level_percent_mean,
    {%- endif %}
    (compliance.participant_id is not null
     {%- for sensor in sensors %} or {{ sensor }}_yield.participant_id is not null{% endfor %}) as has_data
from days
left join {{ ref('avicenna__compliance_daily') }} as compliance
    on compliance.participant_id = days.participant_id and compliance.local_date = days.local_date
left join provisional_days as pending
    on pending.participant_id = days.participant_id and pending.local_date = days.local_date
{%- for sensor in sensors %}
left join {{ ref('avicenna__data_yield_daily') }} as {{ sensor }}_yield
    on {{ sensor }}_yield.participant_id = days.participant_id and {{ sensor }}_yield.local_date = days.local_date
    and {{ sensor }}_yield.sensor = '{{ sensor }}'
{%- endfor %}
{%- if 'gps' in sensors %}
left join {{ ref('avicenna__gps_daily') }} as gps on gps.participant_id = days.participant_id and gps.local_date = days.local_date
{%- endif %}
{%- if 'accelerometer' in sensors %}
left join {{ ref('avicenna__accelerometer_daily') }} as accelerometer on accelerometer.participant_id = days.participant_id and accelerometer.local_date = days.local_date
{%- endif %}
{%- if 'battery' in sensors %}
left join {{ ref('avicenna__battery_daily') }} as battery on battery.participant_id = days.participant_id and battery.local_date = days.local_date
{%- endif %}
