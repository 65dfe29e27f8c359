-- The cheap tier: how many backends wait on a heavyweight lock right now.
SELECT statement_timestamp(), {{.count}}
