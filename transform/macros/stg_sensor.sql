{#- A sensor table typed and deduplicated: `columns` maps output names to
    (source column, type); a column the table lacks is null. Rows are unique on
    `_row_id` (a lookback re-emits rows with the same id; an upserting loader merges
    them, an appending one does not): the most recently loaded copy is kept. Identical
    content means identical participant and time, so the window is partitioned by
    participant and day too, which lets a filter on them reach the table. -#}
{% macro avicenna_stg_sensor(table, columns) %}
{%- set source_relation = avicenna_source(table) -%}
{%- set names = avicenna_column_names(source_relation) -%}
with typed as (
    select
        cast(_row_id as {{ dbt.type_string() }}) as row_id,
        cast(participant_id as bigint) as participant_id,
        cast(record_time as {{ dbt.type_timestamp() }}) as record_time,
        {{ avicenna_local_time('cast(record_time as ' ~ dbt.type_timestamp() ~ ')') }} as local_time,
        cast({{ avicenna_local_time('cast(record_time as ' ~ dbt.type_timestamp() ~ ')') }} as date) as local_date,
        {%- for name, spec in columns.items() %}
        {{ avicenna_optional_column(names, spec[0], spec[1]) }} as {{ name }},
        {%- endfor %}
        {{ avicenna_loaded_at(names) }} as _loaded_at
    from {{ source_relation }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by participant_id, local_date, row_id
            order by _loaded_at desc nulls last
        ) as copy_number
    from typed
)

select
    row_id,
    participant_id,
    record_time,
    local_time,
    local_date,
    {%- for name in columns %}
    {{ name }},
    {%- endfor %}
    _loaded_at
from ranked
where copy_number = 1
{% endmacro %}
