{%- set source_relation = avicenna_source('participants') -%}
{%- set names = avicenna_column_names(source_relation) -%}
{%- set dropped = var('avicenna_dropped_participant_statuses', ['dropped']) -%}
{%- set labels = {} -%}
{%- for id, label in var('avicenna_participant_status_labels', {}).items() -%}
  {%- do labels.update({(id | int): label}) -%}
{%- endfor %}

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
),

{#- the participation export gives a text label (`status`) or an id (`status_id`) #}
labelled as (
    select
        *,
        coalesce(status, {{ avicenna_lookup('status_id', labels) }}) as status_label
    from typed
)

select
    participant_id,
    start_time,
    end_time,
    status,
    status_id,
    status_label,
    coalesce({{ avicenna_in_list('lower(trim(status_label))', dropped | map('lower') | list) }}, false) as is_dropped,
    cast({{ avicenna_local_time('start_time') }} as date) as start_local_date,
    {#- end_time is exclusive: the last day is the one holding the instant before it -#}
    cast({{ avicenna_local_time(dbt.dateadd('second', -1, 'end_time')) }} as date) as end_local_date
from labelled
