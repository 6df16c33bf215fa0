{#- Compliance over a group of stg_avicenna__survey_prompts rows (a participant-day, a
    participant): delivered, answered, their ratio, the median latency of the answers. -#}
{% macro avicenna_compliance_measures() -%}
    count(*) as prompts,
    cast(sum(case when is_delivered then 1 else 0 end) as bigint) as prompts_delivered,
    cast(sum(case when is_completed then 1 else 0 end) as bigint) as prompts_answered,
    cast(sum(case when is_completed then 1 else 0 end) as double precision)
        / nullif(sum(case when is_delivered then 1 else 0 end), 0) as response_rate,
    cast(percentile_cont(0.5) within group (order by latency_seconds) as double precision)
        as median_latency_seconds
{%- endmacro %}
