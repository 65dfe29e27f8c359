-- The columns this server's pg_stat_activity and pg_locks have.
SELECT c.relname::text || '.' || a.attname::text
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
WHERE c.relnamespace = 'pg_catalog'::regnamespace
  AND c.relname IN ('pg_stat_activity', 'pg_locks')
  AND a.attnum > 0 AND NOT a.attisdropped
