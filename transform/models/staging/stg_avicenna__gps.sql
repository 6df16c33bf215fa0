{{ config(enabled=var('avicenna__using_gps', true)) }}
{{ avicenna_stg_sensor('sensor_gps', {
    'latitude': ('lat', 'double precision'),
    'longitude': ('lon', 'double precision'),
    'altitude_m': ('alt', 'double precision'),
    'accuracy_m': ('accu', 'double precision'),
    'bearing_deg': ('bearing', 'double precision'),
    'speed_mps': ('speed', 'double precision'),
    'provider': ('provider', dbt.type_string()),
}) }}
