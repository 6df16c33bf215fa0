{#- Compaction after appending loads (`tap-avicenna--fast` into `target-postgres--fast`,
    README "Throughput, BATCH and scale-out"): in every table of the source schema with a
    `_row_id` column, delete every copy of a row but its latest load (`_loaded_at`; copies
    hold the same content, since `_row_id` hashes it), so that the table holds what the
    upserting loader would have left. The staging models give the same rows before and
    after. PostgreSQL only (the fast path's loader).
        meltano invoke dbt-postgres run-operation avicenna_compact_raw -#}
{% macro avicenna_compact_raw() %}
  {% if target.type != 'postgres' %}
    {{ exceptions.raise_compiler_error("avicenna_compact_raw: PostgreSQL only (the fast path's loader is target-postgres), not " ~ target.type) }}
  {% endif %}
  {% set participants = source('avicenna', 'participants') %}
  {% set query %}
    select table_name from information_schema.columns
    where table_catalog = '{{ participants.database }}'
      and table_schema = '{{ participants.schema }}'
      and column_name = '_row_id'
    order by table_name
  {% endset %}
  {% for name in run_query(query).columns[0].values() %}
    {% set relation = api.Relation.create(database=participants.database, schema=participants.schema, identifier=name) %}
    {% call statement('compact', fetch_result=False, auto_begin=True) %}
      delete from {{ relation }} as raw
      using (
          select
              ctid as copy,
              row_number() over (
                  partition by _row_id
                  order by {{ avicenna_loaded_at(avicenna_column_names(relation)) }} desc nulls last, ctid desc
              ) as copy_number
          from {{ relation }}
      ) as ranked
      where raw.ctid = ranked.copy and ranked.copy_number > 1
    {% endcall %}
    {% do log("avicenna_compact_raw: " ~ relation ~ ": " ~ load_result('compact')['response'].rows_affected ~ " copies deleted", info=True) %}
  {% endfor %}
  {% do adapter.commit() %}
{% endmacro %}
