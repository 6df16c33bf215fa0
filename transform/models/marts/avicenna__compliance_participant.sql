{#- Survey compliance over each participant's whole participation (all surveys). -#}

with prompts as (
    select * from {{ ref('stg_avicenna__survey_prompts') }}
    where local_date is not null
)

select
    participant_id,
    count(distinct local_date) as days_with_prompts,
    min(local_date) as first_prompt_date,
    max(local_date) as last_prompt_date,
    count(*) as prompts,
    cast(sum(case when is_delivered then 1 else 0 end) as bigint) as prompts_delivered,
    cast(sum(case when is_completed then 1 else 0 end) as bigint) as prompts_answered,
    cast(sum(case when is_completed then 1 else 0 end) as double precision)
        / nullif(sum(case when is_delivered then 1 else 0 end), 0) as response_rate,
    cast(percentile_cont(0.5) within group (order by latency_seconds) as double precision)
        as median_latency_seconds
from prompts
group by participant_id
