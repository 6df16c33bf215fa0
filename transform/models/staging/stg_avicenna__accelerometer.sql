{{ config(enabled=var('avicenna__using_accelerometer', true)) }}
{{ avicenna_stg_sensor('sensor_accelerometer', {
    'x_axis': ('x_axis', 'double precision'),
    'y_axis': ('y_axis', 'double precision'),
    'z_axis': ('z_axis', 'double precision'),
    'accuracy': ('accu', 'bigint'),
}) }}
