{{ config(severity=var('avicenna_gaps_severity', 'warn')) }}
{#- Sensor tables whose loaded days have holes that the tap's state may say were synced
    (a fresh database loaded with an old state, a restored backup): one row per stream
    and run of missing local days. README: "Gaps in the loaded days". -#}
{%- set max_late_start_days = var('avicenna_gaps_max_late_start_days', 2) -%}
{%- set max_empty_days = var('avicenna_gaps_max_empty_days', 2) -%}
{%- set from_date = var('avicenna_gaps_from_date', none) -%}

with data_yield as (
    select * from {{ ref('avicenna__data_yield_daily') }}
),

participants as (
    select * from {{ ref('stg_avicenna__participants') }}
),

{#- a participant's rows are expected from the local day of their start, or from
    var('avicenna_gaps_from_date') when later (the tap's start_date) #}
expected as (
    select
        participant_id,
        {%- if from_date %}
        case
            when start_local_date < cast('{{ from_date }}' as date) then cast('{{ from_date }}' as date)
            else start_local_date
        end as expected_from,
        {%- else %}
        start_local_date as expected_from,
        {%- endif %}
        end_local_date
    from participants
),

stream_days as (
    select distinct 'sensor_' || sensor as stream, local_date
    from data_yield
),

{#- each participant's first and last loaded day of each stream #}
stream_participants as (
    select
        'sensor_' || sensor as stream,
        participant_id,
        min(local_date) as first_loaded_day,
        max(local_date) as last_loaded_day
    from data_yield
    group by sensor, participant_id
),

stream_spans as (
    select stream, min(local_date) as first_loaded_day
    from stream_days
    group by stream
),

{#- the earliest day any of the stream's participants was expected to have rows #}
stream_expected as (
    select stream_participants.stream, min(expected.expected_from) as expected_from
    from stream_participants
    inner join expected on expected.participant_id = stream_participants.participant_id
    group by stream_participants.stream
),

late_starts as (
    select
        stream_spans.stream,
        'late_start' as problem,
        stream_expected.expected_from as first_missing_day,
        cast({{ dbt.dateadd('day', -1, 'stream_spans.first_loaded_day') }} as date) as last_missing_day
    from stream_spans
    inner join stream_expected on stream_expected.stream = stream_spans.stream
    where {{ dbt.datediff('stream_expected.expected_from', 'stream_spans.first_loaded_day', 'day') }}
        > {{ max_late_start_days }}
),

next_days as (
    select
        stream,
        local_date,
        lead(local_date) over (partition by stream order by local_date) as next_loaded_day
    from stream_days
),

{#- runs of days without a row of the stream from anyone, between two loaded days #}
empty_runs as (
    select
        stream,
        'empty_days' as problem,
        cast({{ dbt.dateadd('day', 1, 'local_date') }} as date) as first_missing_day,
        cast({{ dbt.dateadd('day', -1, 'next_loaded_day') }} as date) as last_missing_day
    from next_days
    where {{ dbt.datediff('local_date', 'next_loaded_day', 'day') }} - 1 > {{ max_empty_days }}
),

{#- ... inside the participation of a participant with rows of the stream before and
    after them (one who stopped sending, or whose rows are all elsewhere, is not a gap) #}
empty_runs_in_participation as (
    select empty_runs.*
    from empty_runs
    where exists (
        select 1
        from stream_participants
        inner join expected on expected.participant_id = stream_participants.participant_id
        where stream_participants.stream = empty_runs.stream
            and stream_participants.first_loaded_day < empty_runs.first_missing_day
            and stream_participants.last_loaded_day > empty_runs.last_missing_day
            and expected.expected_from <= empty_runs.first_missing_day
            and (expected.end_local_date is null or expected.end_local_date >= empty_runs.last_missing_day)
    )
),

gaps as (
    select * from late_starts
    union all
    select * from empty_runs_in_participation
),

final as (
    select
        stream,
        problem,
        first_missing_day,
        last_missing_day,
        {{ dbt.datediff('first_missing_day', 'last_missing_day', 'day') }} + 1 as missing_days
    from gaps
)

select * from final
