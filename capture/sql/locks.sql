-- Every row of pg_locks, with every lock-tag column: analysis joins lock
-- tags on all of them (transactionid rows have a NULL database).
SELECT locktype, database, relation, page, tuple,
       virtualxid, transactionid, classid, objid, objsubid,
       virtualtransaction, pid, mode, granted, fastpath,
       {{.waitstart}}
FROM pg_locks
