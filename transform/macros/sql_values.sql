{#- `expression in (values)` for a var's list; an empty list matches nothing. -#}
{% macro avicenna_in_list(expression, values) -%}
  {%- if values | length == 0 -%}
    (1 = 0)
  {%- else -%}
    ({{ expression }} in ({% for value in values %}{{ avicenna_literal(value) }}{{ ", " if not loop.last }}{% endfor %}))
  {%- endif -%}
{%- endmacro %}

{#- A var's value as an SQL literal: numbers as they are, text quoted. -#}
{% macro avicenna_literal(value) -%}
  {%- if value is number -%}
    {{ value }}
  {%- else -%}
    '{{ value | string | replace("'", "''") }}'
  {%- endif -%}
{%- endmacro %}

{#- `expression` looked up in a var's mapping: `case expression when key then value ...
    end` (keys and values as SQL literals); null when it is not a key. -#}
{% macro avicenna_lookup(expression, mapping) -%}
  {%- if mapping | length == 0 -%}
    null
  {%- else -%}
    case {{ expression }}
      {%- for key, value in mapping.items() %} when {{ avicenna_literal(key) }} then {{ avicenna_literal(value) }}{% endfor %} end
  {%- endif -%}
{%- endmacro %}
