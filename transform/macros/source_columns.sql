{#- The loader's tables differ by loader and version: target-postgres adds `_sdc_*`
    columns, target-duckdb does not; a survey has the columns its `columns` setting asked
    for. These macros read what a table has and select a typed null for what it lacks. -#}

{#- Lower-case column names of a relation ([] while dbt parses). -#}
{% macro avicenna_column_names(relation) %}
  {% if not execute or relation is none %}
    {{ return([]) }}
  {% endif %}
  {% set names = [] %}
  {% for column in adapter.get_columns_in_relation(relation) %}
    {% do names.append(column.name | lower) %}
  {% endfor %}
  {{ return(names) }}
{% endmacro %}

{#- `column` cast to `type` when the table has it, else a null of that type. -#}
{% macro avicenna_optional_column(names, column, type) -%}
  {%- if column in names -%}
    cast({{ column }} as {{ type }})
  {%- else -%}
    cast(null as {{ type }})
  {%- endif -%}
{%- endmacro %}

{#- When the row was loaded: target-postgres's `_sdc_batched_at`, else the tap's
    `_extracted_at` (the export's download time, set in RECORD and BATCH modes alike:
    BATCH loads leave `_sdc_batched_at` NULL, target-duckdb adds no such column); null
    for tables loaded before the tap set `_extracted_at`. -#}
{% macro avicenna_loaded_at(names) -%}
  coalesce(
    {{ avicenna_optional_column(names, '_sdc_batched_at', dbt.type_timestamp()) }},
    {{ avicenna_optional_column(names, '_extracted_at', dbt.type_timestamp()) }})
{%- endmacro %}

{#- The survey tables the tap loaded (`survey_<name>` in the source's schema, var('avicenna_schema')),
    restricted to var('avicenna_surveys') when it is set; a table without `participant_id`
    (a survey whose `columns` left it out) is left out with a warning. -#}
{% macro avicenna_survey_relations() %}
  {#- the schema and database of the package's source, wherever its vars put it -#}
  {% set participants = avicenna_source('participants') %}
  {% if not execute %}
    {{ return([]) }}
  {% endif %}
  {% set schema, database = participants.schema, participants.database %}
  {% set wanted = var('avicenna_surveys', none) %}
  {% set query %}
    select table_name from information_schema.tables
    where table_catalog = '{{ database }}' and table_schema = '{{ schema }}'
      and left(table_name, 7) = 'survey_'
    order by table_name
  {% endset %}
  {% set names = run_query(query).columns[0].values() %}
  {% do avicenna_check_surveys(names, schema) %}
  {% set relations = [] %}
  {% for name in names %}
    {% if wanted is none or name[7:] in wanted %}
      {% set relation = api.Relation.create(database=database, schema=schema, identifier=name) %}
      {% if 'participant_id' in avicenna_column_names(relation) %}
        {% do relations.append(relation) %}
      {% else %}
        {% do exceptions.warn(schema ~ "." ~ name ~ " has no participant_id column and is left out of the survey models: list participant_id in the survey's `columns` setting") %}
      {% endif %}
    {% endif %}
  {% endfor %}
  {{ return(relations) }}
{% endmacro %}
