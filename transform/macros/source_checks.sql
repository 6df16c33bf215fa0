{#- A loaded table that is not where the package looks must stop the build with the
    schema and the setting to change: otherwise the database fails with its own message
    (sensors, participants) or, for the surveys, which are found by name, the survey and
    compliance models build "OK" and empty. -#}

{#- source('avicenna', table), checked when the model runs: the table must exist. -#}
{% macro avicenna_source(table) %}
  {%- set relation = source('avicenna', table) -%}
  {%- if execute and adapter.get_relation(relation.database, relation.schema, relation.identifier) is none -%}
    {%- set hint = "; if the table has another name, set the var avicenna_" ~ table ~ "_identifier" -%}
    {%- if table.startswith('sensor_') -%}
      {%- set hint = hint ~ "; if the tap loads no such stream, set the var avicenna__using_" ~ table[7:] ~ ": false" -%}
    {%- endif -%}
    {{ exceptions.raise_compiler_error(
        "avicenna: no table " ~ relation.identifier ~ " in schema " ~ relation.schema ~ " ("
        ~ (relation.database ~ "." if relation.database else "") ~ relation.schema
        ~ "), where the dbt package reads the loaded tables: set the var avicenna_schema"
        ~ " (or the DBT_AVICENNA_SCHEMA variable) to the loader's default_target_schema"
        ~ hint) }}
  {%- endif -%}
  {{ return(relation) }}
{% endmacro %}

{#- The survey tables of `schema` (`table_names`, survey_<name>) against
    var('avicenna_surveys'): a listed survey without its table fails; none found while
    the var is unset warns that the survey and compliance models are empty (set the var
    to [] for a study without surveys). -#}
{% macro avicenna_check_surveys(table_names, schema) %}
  {%- set found = [] -%}
  {%- for name in table_names -%}
    {%- do found.append(name[7:]) -%}
  {%- endfor -%}
  {%- set wanted = var('avicenna_surveys', none) -%}
  {%- if wanted is none -%}
    {%- if found | length == 0 -%}
      {% do exceptions.warn("avicenna: no survey_* table in schema " ~ schema ~ ": the survey and compliance models are empty. Set the var avicenna_schema to the loader's default_target_schema, or avicenna_surveys: [] for a study without surveys") %}
    {%- endif -%}
  {%- else -%}
    {%- set missing = wanted | reject('in', found) | list -%}
    {%- if missing -%}
      {{ exceptions.raise_compiler_error("avicenna: the var avicenna_surveys lists " ~ missing | join(', ') ~ " but schema " ~ schema ~ " has no table survey_" ~ missing | join(', survey_') ~ ": check the var and the loader's default_target_schema (var avicenna_schema)") }}
    {%- endif -%}
  {%- endif -%}
{% endmacro %}
