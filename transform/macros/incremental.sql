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

{#- The rows of `relation` whose participant-day must be (re)computed: all of them in a
    full build; in an incremental build those of the participant-days touched by new
    rows (avicenna_is_new) or listed by the query `also_days` (participant_id, local_date). -#}
{% macro avicenna_rows_to_build(relation, this_filter='true', also_days=none) -%}
  {%- if is_incremental() -%}
  (
    select r.* from {{ relation }} as r
    where exists (
      select 1 from (
        select participant_id, local_date from {{ relation }}
        where {{ avicenna_is_new('_loaded_at', this_filter) }}
        {%- if also_days %}
        union
        {{ also_days }}
        {%- endif %}
      ) as touched
      where touched.participant_id = r.participant_id and touched.local_date = r.local_date
    )
  )
  {%- else -%}
  {{ relation }}
  {%- endif -%}
{%- endmacro %}
