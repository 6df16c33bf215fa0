{#- Expressions that PostgreSQL and DuckDB spell differently (adapter.dispatch). -#}

{#- A loader timestamp column (UTC, without zone) as the participants' local time,
    var('avicenna_timezone'), without zone. -#}
{% macro avicenna_local_time(column) -%}
  {{ avicenna_convert_time(column, 'UTC', var('avicenna_timezone', 'UTC')) }}
{%- endmacro %}

{#- A local wall-clock timestamp (without zone) in var('avicenna_timezone') as the UTC
    instant it names, without zone: the inverse of avicenna_local_time. -#}
{% macro avicenna_utc_time(column) -%}
  {{ avicenna_convert_time(column, var('avicenna_timezone', 'UTC'), 'UTC') }}
{%- endmacro %}

{#- A timestamp without zone read as wall-clock time in `from_zone`, as the wall-clock
    time of the same instant in `to_zone`, without zone. -#}
{% macro avicenna_convert_time(column, from_zone, to_zone) -%}
  {%- if from_zone | upper == to_zone | upper -%}
    {{ column }}
  {%- else -%}
    {{ adapter.dispatch('avicenna_convert_time', 'avicenna')(column, from_zone, to_zone) }}
  {%- endif -%}
{%- endmacro %}

{% macro default__avicenna_convert_time(column, from_zone, to_zone) -%}
  (({{ column }}) at time zone '{{ from_zone }}') at time zone '{{ to_zone }}'
{%- endmacro %}

{% macro duckdb__avicenna_convert_time(column, from_zone, to_zone) -%}
  timezone('{{ to_zone }}', timezone('{{ from_zone }}', {{ column }}))
{%- endmacro %}

{#- Seconds from `start` to `end` (timestamps), as a double. -#}
{% macro avicenna_seconds_between(start, end) -%}
  {{ adapter.dispatch('avicenna_seconds_between', 'avicenna')(start, end) }}
{%- endmacro %}

{% macro default__avicenna_seconds_between(start, end) -%}
  cast(extract(epoch from (({{ end }}) - ({{ start }}))) as double precision)
{%- endmacro %}

{% macro duckdb__avicenna_seconds_between(start, end) -%}
  ((epoch_ms({{ end }}) - epoch_ms({{ start }})) / 1000.0)
{%- endmacro %}

{#- One row per date from `start_date` to `end_date` (inclusive): a select-list expression. -#}
{% macro avicenna_date_series(start_date, end_date) -%}
  {{ adapter.dispatch('avicenna_date_series', 'avicenna')(start_date, end_date) }}
{%- endmacro %}

{% macro default__avicenna_date_series(start_date, end_date) -%}
  cast(generate_series(cast({{ start_date }} as timestamp), cast({{ end_date }} as timestamp), interval '1 day') as date)
{%- endmacro %}

{% macro duckdb__avicenna_date_series(start_date, end_date) -%}
  cast(unnest(generate_series(cast({{ start_date }} as timestamp), cast({{ end_date }} as timestamp), interval 1 day)) as date)
{%- endmacro %}

{% macro avicenna_json_type() -%}
  {{ adapter.dispatch('avicenna_json_type', 'avicenna')() }}
{%- endmacro %}

{% macro default__avicenna_json_type() -%} jsonb {%- endmacro %}

{% macro duckdb__avicenna_json_type() -%} json {%- endmacro %}

{#- Great-circle distance in metres between two points in degrees (haversine, mean
    Earth radius 6,371,008.8 m). -#}
{% macro avicenna_haversine_meters(lat1, lon1, lat2, lon2) -%}
  (2 * 6371008.8 * asin(least(1.0, sqrt(
      power(sin(radians(({{ lat2 }}) - ({{ lat1 }})) / 2), 2)
      + cos(radians({{ lat1 }})) * cos(radians({{ lat2 }}))
        * power(sin(radians(({{ lon2 }}) - ({{ lon1 }})) / 2), 2)
  ))))
{%- endmacro %}

{#- The UTC instants at which the local day `local_date` starts and ends (its local
    midnight and the next): 23, 24 or 25 hours apart around daylight-saving changes. -#}
{% macro avicenna_day_start(local_date) -%}
  {{ avicenna_utc_time('cast(' ~ local_date ~ ' as ' ~ dbt.type_timestamp() ~ ')') }}
{%- endmacro %}

{% macro avicenna_day_end(local_date) -%}
  {{ avicenna_utc_time(dbt.dateadd('day', 1, 'cast(' ~ local_date ~ ' as ' ~ dbt.type_timestamp() ~ ')')) }}
{%- endmacro %}

{#- The real length of the local day `local_date` in hours (23, 24 or 25). -#}
{% macro avicenna_day_hours(local_date) -%}
  ({{ avicenna_seconds_between(avicenna_day_start(local_date), avicenna_day_end(local_date)) }} / 3600.0)
{%- endmacro %}
