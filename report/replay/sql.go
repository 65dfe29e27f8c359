package replay

// The runbook's queries (../shared/runbook-odoo-ddl-lock-queue.txt),
// verbatim: the views evaluate them over a recorded sample, and the tests
// run them live beside the recorder to check that the views agree.
const (
	SQLActivity = `select now() as captured_at;
select pid, usename, application_name, state, wait_event_type, wait_event,
now() - query_start as runtime,
left(query, 220) as query
from pg_stat_activity
where datname = current_database()
order by query_start asc;`
	SQLLocks = `select
a.pid,
a.usename,
a.application_name,
l.mode,
l.granted,
coalesce(c.relname::text, l.relation::text) as relation,
now() - a.query_start as query_age,
left(a.query, 200) as query
from pg_locks l
join pg_stat_activity a on a.pid = l.pid
left join pg_class c on c.oid = l.relation
where a.datname = current_database()
order by l.granted asc, query_age desc;`
	SQLAccessExclusive = `select
a.pid,
a.application_name,
l.granted,
now() - a.query_start as age,
coalesce(c.relname::text, l.relation::text) as relation,
left(a.query, 220) as query
from pg_locks l
join pg_stat_activity a on a.pid = l.pid
left join pg_class c on c.oid = l.relation
where a.datname = current_database()
and l.mode = 'AccessExclusiveLock'
order by l.granted asc, age desc;`
	SQLBlocking = `select
w.pid as waiting_pid,
w.application_name as waiting_app,
now() - w.query_start as waiting_for,
b.pid as blocking_pid,
b.application_name as blocking_app,
now() - b.query_start as blocking_for,
left(w.query, 120) as waiting_query,
left(b.query, 120) as blocking_query
from pg_stat_activity w
join pg_stat_activity b on b.pid = any(pg_blocking_pids(w.pid))
where w.datname = current_database()
order by waiting_for desc;`
	SQLVerifyWaiters = `select count(*) as lock_waiters
from pg_stat_activity
where datname = current_database()
and wait_event_type = 'Lock';`
	SQLVerifyAccessExclusive = `select count(*) as access_exclusive_waiters
from pg_locks l
join pg_stat_activity a on a.pid = l.pid
where a.datname = current_database()
and l.mode = 'AccessExclusiveLock'
and not l.granted;`
	// SQLPrepared finds the transactions prepared for two-phase commit:
	// pg_blocking_pids reports them as pid 0 and pg_locks with a NULL
	// pid, so the views above cannot name them; only ROLLBACK PREPARED
	// (or COMMIT PREPARED) in their database ends them.
	SQLPrepared = `select gid, database, owner, prepared, now() - prepared as age
from pg_prepared_xacts
order by prepared;`
	SQLVerifyModules = `select name, state
from ir_module_module
where state in ('to install', 'to upgrade', 'to remove')
order by name;`
)
