-- Who and what the recorder is connected to, read once per connection.
SELECT current_setting('server_version'),
       current_setting('server_version_num')::int,
       pg_backend_pid(),
       (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()),
       current_database(),
       (SELECT oid::int8 FROM pg_database WHERE datname = current_database()),
       current_user,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
         OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
       to_regclass('public.ir_module_module') IS NOT NULL
