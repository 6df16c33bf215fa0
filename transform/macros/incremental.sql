{#- Late data: phones upload days late, so the daily marts are rebuilt by
    participant-day. An incremental build recomputes every participant-day that has a
    row loaded since the last build (its newest `_loaded_at`, minus
    var('avicenna_incremental_lookback_minutes') for loads that overlapped it); rows
    without a load time (target-duckdb, BATCH loads) always count as new. -#}

{#- True for a row loaded after the last build of `this` (rows of `this` matching
    `this_filter` only, e.g. one sensor). -#}
{% macro avicenna_is_new(loaded_at, this_filter='true') -%}
  ({{ loaded_at }} is null or {{ loaded_at }} > (
      select {{ dbt.dateadd('minute', -1 * var('avicenna_incremental_lookback_minutes', 60),
                            "coalesce(max(_loaded_at), cast('1900-01-01' as " ~ dbt.type_timestamp() ~ "))") }}
      from {{ this }} where {{ this_filter }}))
{%- endmacro %}

{#- (participant_id, local_date) of the rows of `relation` loaded since the last build. -#}
{% macro avicenna_new_days(relation, this_filter='true') -%}
  select participant_id, local_date from {{ relation }}
  where {{ avicenna_is_new('_loaded_at', this_filter) }}
{%- endmacro %}

{#- The same for a sensor table, read from the loaded table itself: the staging view
    would deduplicate every row before the filter. -#}
{% macro avicenna_new_sensor_days(table, this_filter='true') -%}
  {%- set relation = source('avicenna', table) -%}
  {%- set timestamp = 'cast(record_time as ' ~ dbt.type_timestamp() ~ ')' -%}
  select distinct
      cast(participant_id as bigint) as participant_id,
      cast({{ avicenna_local_time(timestamp) }} as date) as local_date
  from {{ relation }}
  where {{ avicenna_is_new(avicenna_loaded_at(avicenna_column_names(relation)), this_filter) }}
{%- endmacro %}

{#- The rows of `relation` whose participant-day must be (re)computed: all of them in a
    full build; in an incremental build those of the participant-days of `new_days` or
    of the query `also_days` (both select participant_id, local_date). The first such
    day, read before the build, also becomes a constant filter, which the database
    can apply to the loaded table below the staging view's deduplication. -#}
{% macro avicenna_rows_to_build(relation, new_days, also_days=none) -%}
  {%- if is_incremental() -%}
    {%- set touched -%}
      {{ new_days }}
      {%- if also_days %}
      union
      {{ also_days }}
      {%- endif %}
    {%- endset -%}
    {%- set first_day = none -%}
    {%- if execute -%}
      {%- set first_day = run_query('select min(local_date) from (' ~ touched ~ ') as touched').columns[0].values()[0] -%}
    {%- endif %}
  (
    select rows_to_build.* from {{ relation }} as rows_to_build
    {%- if first_day is none %}
    where 1 = 0
    {%- else %}
    where rows_to_build.local_date >= cast('{{ first_day }}' as date)
      and exists (
        select 1 from ({{ touched }}) as touched
        where touched.participant_id = rows_to_build.participant_id and touched.local_date = rows_to_build.local_date
      )
    {%- endif %}
  )
  {%- else -%}
  {{ relation }}
  {%- endif -%}
{%- endmacro %}
