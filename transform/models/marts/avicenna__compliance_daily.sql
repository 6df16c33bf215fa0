{{ config(
    materialized='incremental',
    unique_key=['participant_id', 'local_date'],
    incremental_strategy='delete+insert',
) }}
{#- Survey compliance per participant and local day of the prompt (all surveys). -#}

with prompts as (
    select *
    from {{ avicenna_rows_to_build(ref('stg_avicenna__survey_prompts'), avicenna_new_days(ref('stg_avicenna__survey_prompts'))) }} as p
    where local_date is not null
)

select
    participant_id,
    local_date,
    count(*) as prompts,
    cast(sum(case when is_delivered then 1 else 0 end) as bigint) as prompts_delivered,
    cast(sum(case when is_completed then 1 else 0 end) as bigint) as prompts_answered,
    cast(sum(case when is_completed then 1 else 0 end) as double precision)
        / nullif(sum(case when is_delivered then 1 else 0 end), 0) as response_rate,
    cast(percentile_cont(0.5) within group (order by latency_seconds) as double precision)
        as median_latency_seconds,
    max(_loaded_at) as _loaded_at
from prompts
group by participant_id, local_date
