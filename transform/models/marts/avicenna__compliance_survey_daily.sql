{#- Survey compliance per participant, local day of the prompt and survey: a 5-a-day
    EMA and a daily diary are reported apart (avicenna__compliance_daily pools them).
    A day is provisional while its unanswered (status 0: "no response uploaded yet")
    sessions may still change: it lies within var('avicenna_survey_pending_days') days
    of the last sync. A table (not incremental): the flag moves with every sync. -#}

with prompts as (
    select * from {{ ref('stg_avicenna__survey_prompts') }}
),

last_sync as (
    {#- the newest load of a session; without load times, the newest session #}
    select
        cast({{ avicenna_local_time('coalesce(max(_loaded_at), max(record_time))') }} as date)
            as last_sync_local_date
    from prompts
),

days as (
    select
        participant_id,
        local_date,
        survey_name,
        {{ avicenna_compliance_measures() }}
    from prompts
    where local_date is not null
    group by participant_id, local_date, survey_name
),

final as (
    select
        days.*,
        days.prompts_unanswered > 0
            and days.local_date >= {{ dbt.dateadd('day', -1 * var('avicenna_survey_pending_days', 3), 'last_sync.last_sync_local_date') }}
            as is_provisional
    from days
    cross join last_sync
)

select * from final
