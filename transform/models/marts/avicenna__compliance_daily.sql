{{ config(
    materialized='incremental',
    unique_key=['participant_id', 'local_date'],
    incremental_strategy='delete+insert',
) }}
{#- Survey compliance per participant and local day of the prompt (all surveys). -#}

with prompts as (
    {%- set prompts = ref('stg_avicenna__survey_prompts') %}
    select *
    from {{ avicenna_rows_to_build(prompts, avicenna_new_days(prompts)) }} as survey_prompts
    where local_date is not null
)

select
    participant_id,
    local_date,
    {{ avicenna_compliance_measures() }},
    max(_loaded_at) as _loaded_at
from prompts
group by participant_id, local_date
