{{ config(enabled=var('avicenna__using_battery', true)) }}
{{ avicenna_stg_sensor('sensor_battery', {
    'level': ('level', 'double precision'),
    'scale': ('scale', 'double precision'),
    'plugged': ('plugged', 'bigint'),
}) }}
