{#- Home uses a grid of ~var('avicenna_place_cell_meters') square cells: rows
    of constant latitude, each row's longitude step widened by 1 / cos(latitude of the
    row's centre). 111,195 m per degree of latitude (the haversine's Earth radius). -#}

{% macro avicenna_lat_step() -%}
  ({{ var('avicenna_place_cell_meters', 100) }} / 111195.0)
{%- endmacro %}

{% macro avicenna_lat_cell(lat) -%}
  cast(floor(({{ lat }}) / {{ avicenna_lat_step() }}) as bigint)
{%- endmacro %}

{% macro avicenna_lon_cell(lat, lon) -%}
  cast(floor(({{ lon }}) * cos(radians((floor(({{ lat }}) / {{ avicenna_lat_step() }}) + 0.5) * {{ avicenna_lat_step() }}))
             / {{ avicenna_lat_step() }}) as bigint)
{%- endmacro %}

{#- The night-time condition on a local time, [start, end) local hours; the window may
    wrap midnight (22 to 6). -#}
{% macro avicenna_is_night(local_time) -%}
  {%- set start = var('avicenna_home_night_start_hour', 0) -%}
  {%- set end = var('avicenna_home_night_end_hour', 6) -%}
  {%- if start < end -%}
    (extract(hour from {{ local_time }}) >= {{ start }} and extract(hour from {{ local_time }}) < {{ end }})
  {%- else -%}
    (extract(hour from {{ local_time }}) >= {{ start }} or extract(hour from {{ local_time }}) < {{ end }})
  {%- endif -%}
{%- endmacro %}

{#- A GPS fix that counts: it has a position, and an accuracy within
    var('avicenna_gps_max_accuracy_meters') (a fix without accuracy counts). -#}
{% macro avicenna_is_valid_fix() -%}
  (latitude is not null and longitude is not null
   and coalesce(accuracy_m, 0) <= {{ var('avicenna_gps_max_accuracy_meters', 100) }})
{%- endmacro %}
