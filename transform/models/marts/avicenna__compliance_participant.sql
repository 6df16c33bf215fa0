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
    {{ avicenna_compliance_measures() }}
from prompts
group by participant_id
