{#- Generic data tests that dbt Hub packages (dbt_utils) would otherwise provide: the
    Hub cannot be reached from many secured warehouses. -#}

{% test avicenna_unique_combination(model, combination) %}
select {{ combination | join(', ') }}, count(*) as copies
from {{ model }}
group by {{ combination | join(', ') }}
having count(*) > 1
{% endtest %}

{#- Rows where `expression` is false (nulls pass: test them with not_null). -#}
{% test avicenna_expression_is_true(model, expression, column_name=none) %}
select * from {{ model }} where not ({{ expression }})
{% endtest %}
