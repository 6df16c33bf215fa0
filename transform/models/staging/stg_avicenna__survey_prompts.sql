{#- One row per survey session (prompt) of every survey table the tap loaded
    (avicenna_survey_relations), with its status and response times. A session's status
    comes as an id (`status_id`) or a text label (`status`, where the tap puts labels);
    both map to one id and label through var('avicenna_survey_status_labels'). A survey
    loaded without `prompt_time` / a status column has nulls there, and so no compliance
    figures. -#}
{%- set completed = var('avicenna_survey_completed_status_ids', [1]) -%}
{%- set undelivered = var('avicenna_survey_undelivered_status_ids', [4]) -%}
{%- set unanswered = var('avicenna_survey_unanswered_status_ids', [0]) -%}
{#- the labels by id, and the ids by lower-case label -#}
{%- set labels = {} -%}
{%- set ids = {} -%}
{%- for id, label in var('avicenna_survey_status_labels', {}).items() -%}
  {%- do labels.update({(id | int): label}) -%}
  {%- do ids.update({(label | lower): (id | int)}) -%}
{%- endfor -%}
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
        {{ avicenna_optional_column(names, 'start_time', ts) }} as start_time,
        cast(record_time as {{ ts }}) as record_time,
        {{ avicenna_optional_column(names, 'status_id', 'bigint') }} as exported_status_id,
        {{ avicenna_optional_column(names, 'status', dbt.type_string()) }} as status_text,
        {{ 'true' if 'status_id' in names or 'status' in names else 'false' }} as status_exported,
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
        cast(null as {{ ts }}) as start_time,
        cast(null as {{ ts }}) as record_time,
        cast(null as bigint) as exported_status_id,
        cast(null as {{ dbt.type_string() }}) as status_text,
        false as status_exported,
        cast(null as {{ ts }}) as _loaded_at
    where 1 = 0
    {%- endfor %}
),

identified as (
    select
        *,
        coalesce(exported_status_id, {{ avicenna_lookup('lower(trim(status_text))', ids) }}) as status_id
    from sessions
),

labelled as (
    select
        *,
        {{ avicenna_lookup('status_id', labels) }} as status_label
    from identified
),

final as (
    select
        survey_name,
        session_uuid,
        participant_id,
        prompt_time,
        start_time,
        record_time,
        {{ avicenna_local_time('prompt_time') }} as prompt_local_time,
        cast({{ avicenna_local_time('prompt_time') }} as date) as local_date,
        status_id,
        status_label,
        status_text,
        status_exported,
        status_label is not null and not {{ avicenna_in_list('status_id', undelivered) }} as is_delivered,
        status_label is not null and {{ avicenna_in_list('status_id', completed) }} as is_completed,
        status_label is not null and {{ avicenna_in_list('status_id', unanswered) }} as is_unanswered,
        case
            when status_label is not null and {{ avicenna_in_list('status_id', completed) }}
                then {{ avicenna_seconds_between('prompt_time', 'record_time') }}
        end as seconds_to_submit,
        case
            when status_label is not null and {{ avicenna_in_list('status_id', completed) }}
                then {{ avicenna_seconds_between('prompt_time', 'start_time') }}
        end as seconds_to_start,
        _loaded_at
    from labelled
)

select * from final
