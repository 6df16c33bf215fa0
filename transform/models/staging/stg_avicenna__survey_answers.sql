{#- Survey answers in long form: one row per answered question of a session, from the
    `q<id>` / `q<id>_metadata` column pairs of every survey table. -#}
{%- set relations = avicenna_survey_relations() -%}
{%- set json = avicenna_json_type() -%}
{%- set selects = [] -%}
{%- for relation in relations -%}
  {%- set names = avicenna_column_names(relation) -%}
  {%- for name in names if modules.re.fullmatch('q[0-9]+', name) -%}
    {%- set metadata = name ~ '_metadata' -%}
    {%- set part -%}
    select
        '{{ relation.identifier[7:] }}' as survey_name,
        cast(uuid as {{ dbt.type_string() }}) as session_uuid,
        cast(participant_id as bigint) as participant_id,
        cast({{ name[1:] }} as bigint) as question_id,
        cast({{ name }} as {{ dbt.type_string() }}) as answer,
        {{ avicenna_optional_column(names, metadata, json) }} as answer_metadata
    from {{ relation }}
    where {{ name }} is not null
    {%- endset -%}
    {%- do selects.append(part) -%}
  {%- endfor -%}
{%- endfor %}

{% if selects -%}
{{ selects | join('\nunion all\n') }}
{%- else -%}
select
    cast(null as {{ dbt.type_string() }}) as survey_name,
    cast(null as {{ dbt.type_string() }}) as session_uuid,
    cast(null as bigint) as participant_id,
    cast(null as bigint) as question_id,
    cast(null as {{ dbt.type_string() }}) as answer,
    cast(null as {{ json }}) as answer_metadata
where 1 = 0
{%- endif %}
