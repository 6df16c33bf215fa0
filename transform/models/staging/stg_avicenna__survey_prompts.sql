{#- One row per survey session (prompt) of every survey table the tap loaded
    (avicenna_survey_relations), with its status and response latency. A survey loaded
    without `prompt_time` / `status_id` in its `columns` setting has nulls there, and
    so no compliance figures. -#}
{%- set completed = var('avicenna_survey_completed_status_ids', [1]) -%}
{%- set undelivered = var('avicenna_survey_undelivered_status_ids', [4]) -%}
{%- set labels = var('avicenna_survey_status_labels', {}) -%}
{%- set ts = dbt.type_timestamp() -%}
{%- set relations = avicenna_survey_relations() %}

with sessions as (
    {%- for relation in relations %}
    {%- set names = avicenna_column_names(relation) %}
    select
        '{{ relation.identifier[7:] }}' as survey_name,
        cast(uuid as {{ dbt.type_string() }}) as session_uuid,
        cast(participant_id as bigint) as participant_id,
        {{ avicenna_optional_column(names, 'prompt_time', ts) }} as prompt_time,
        cast(record_time as {{ ts }}) as record_time,
        {{ avicenna_optional_column(names, 'status_id', 'bigint') }} as status_id,
        {{ avicenna_optional_column(names, 'status', dbt.type_string()) }} as status_text,
        {{ avicenna_loaded_at(names) }} as _loaded_at
    from {{ relation }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- else %}
    {#- no survey table: an empty relation of the same shape #}
    select
        cast(null as {{ dbt.type_string() }}) as survey_name,
        cast(null as {{ dbt.type_string() }}) as session_uuid,
        cast(null as bigint) as participant_id,
        cast(null as {{ ts }}) as prompt_time,
        cast(null as {{ ts }}) as record_time,
        cast(null as bigint) as status_id,
        cast(null as {{ dbt.type_string() }}) as status_text,
        cast(null as {{ ts }}) as _loaded_at
    where 1 = 0
    {%- endfor %}
),

labelled as (
    select
        *,
        coalesce(
            status_text,
            case status_id
                {%- for id, label in labels.items() %}
                when {{ avicenna_literal(id) }} then {{ avicenna_literal(label) }}
                {%- endfor %}
            end
        ) as status_label
    from sessions
)

select
    survey_name,
    session_uuid,
    participant_id,
    prompt_time,
    record_time,
    {{ avicenna_local_time('prompt_time') }} as prompt_local_time,
    cast({{ avicenna_local_time('prompt_time') }} as date) as local_date,
    status_id,
    status_label,
    status_id is not null and not {{ avicenna_in_list('status_id', undelivered) }} as is_delivered,
    status_id is not null and {{ avicenna_in_list('status_id', completed) }} as is_completed,
    case
        when {{ avicenna_in_list('status_id', completed) }}
            then {{ avicenna_seconds_between('prompt_time', 'record_time') }}
    end as latency_seconds,
    _loaded_at
from labelled
