{#- Compliance over a group of stg_avicenna__survey_prompts rows (a participant-day, a
    participant, one survey's): delivered, answered, unanswered (status 0, which may
    still change), the response rate, and the median times to start and to submit of
    the answered prompts. -#}
{% macro avicenna_compliance_measures() -%}
    count(*) as prompts,
    cast(sum(case when is_delivered then 1 else 0 end) as bigint) as prompts_delivered,
    cast(sum(case when is_completed then 1 else 0 end) as bigint) as prompts_answered,
    cast(sum(case when is_unanswered then 1 else 0 end) as bigint) as prompts_unanswered,
    cast(sum(case when is_completed then 1 else 0 end) as double precision)
        / nullif(sum(case when is_delivered then 1 else 0 end), 0) as response_rate,
    cast(percentile_cont(0.5) within group (order by seconds_to_start) as double precision)
        as median_seconds_to_start,
    cast(percentile_cont(0.5) within group (order by seconds_to_submit) as double precision)
        as median_seconds_to_submit
{%- endmacro %}
