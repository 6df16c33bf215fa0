{%- set source_relation = avicenna_source('participants') -%}
{%- set names = avicenna_column_names(source_relation) -%}
{%- set dropped = var('avicenna_dropped_participant_statuses', ['dropped']) -%}

with source as (
    select * from {{ source_relation }}
),

typed as (
    select
        cast(participant_id as bigint) as participant_id,
        cast(start_time as {{ dbt.type_timestamp() }}) as start_time,
        {{ avicenna_optional_column(names, 'end_time', dbt.type_timestamp()) }} as end_time,
        {{ avicenna_optional_column(names, 'status', dbt.type_string()) }} as status,
        {{ avicenna_optional_column(names, 'status_id', 'bigint') }} as status_id
    from source
)

select
    participant_id,
    start_time,
    end_time,
    status,
    status_id,
    coalesce({{ avicenna_in_list('lower(status)', dropped | map('lower') | list) }}, false) as is_dropped,
    cast({{ avicenna_local_time('start_time') }} as date) as start_local_date,
    {#- end_time is exclusive: the last day is the one holding the instant before it -#}
    cast({{ avicenna_local_time(dbt.dateadd('second', -1, 'end_time')) }} as date) as end_local_date
from typed
