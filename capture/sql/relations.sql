-- Names for relation oids seen in pg_locks. A catalog read by oid: it takes
-- no lock on the relation itself, so it cannot queue behind DDL on it.
SELECT c.oid, n.nspname, c.relname, c.relkind::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY($1::oid[])
