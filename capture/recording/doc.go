// Package recording defines lockscope's on-disk recording format.
//
// A recording is a directory. Every table of a segment is one Parquet file,
// laid out as a Hive-partitioned dataset so that many recordings (a fleet)
// can be queried as one:
//
//	DIR/<table>/cluster=<cluster>/date=<YYYY-MM-DD>/<segment>.parquet
//
// The tables are activity (pg_stat_activity), locks (pg_locks), edges
// (pg_blocking_pids), relations (relation names), ticks (one row per
// sample, with the recorder's own cost), events (connects, gaps, warnings),
// pgbouncer_pools, pgbouncer_servers, odoo_modules and prepared_xacts
// (pg_prepared_xacts, in full samples). Row structs in this
// package are the schema: column names follow PostgreSQL's, pids are int32,
// times are microseconds since the epoch in UTC.
//
// # Crash safety
//
// The open segment lives in a journal (DIR/journal/<segment>.wal): one framed,
// checksummed, compressed record per sample, appended with a single write.
// A segment is sealed by streaming its journal into Parquet files that are
// written under a temporary name, synced and renamed into place; only then is
// the journal removed. A journal left behind by a crash is sealed the same way
// by Recover, so a killed recorder loses at most the sample it was writing.
//
// # Metadata
//
// Every Parquet file carries the key-value metadata KeySchemaVersion,
// KeyTable and KeyMeta (the capture's Meta as JSON: server version, system
// identifier, intervals, absent columns; never a password).
package recording
