-- One row per backend of the whole cluster, with pg_blocking_pids() only for
-- the backends waiting on a heavyweight lock: each call takes every
-- lock-manager partition lock, so it is never evaluated for other rows.
-- Columns this server lacks are selected as typed NULLs (see Meta.AbsentColumns).
SELECT statement_timestamp(),
       datid, datname, pid,
       {{.leader_pid}}, usesysid, usename, application_name,
       client_addr, client_hostname, client_port,
       backend_start, xact_start, query_start, state_change,
       wait_event_type, wait_event, state,
       backend_xid, backend_xmin,
       {{.query_id}},
       left(query, $1),
       backend_type,
       CASE WHEN {{.waiting}} THEN pg_blocking_pids(pid) END
FROM pg_stat_activity
