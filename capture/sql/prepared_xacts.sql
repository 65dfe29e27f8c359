-- Transactions prepared for two-phase commit. They hold their locks with no
-- backend: pg_locks shows those rows with a NULL pid and virtualtransaction
-- -1/<transaction>, and pg_blocking_pids reports them as pid 0. This view
-- names them (gid), so analysis can say which one to ROLLBACK PREPARED.
-- Cheap: it reads the shared two-phase state, a handful of entries at most.
SELECT transaction::text::int8, gid, prepared, owner::text, database::text
FROM pg_prepared_xacts
