package recording

import (
	"fmt"

	"github.com/parquet-go/parquet-go"
)

// SchemaVersion is the version of the table schemas below. It is written
// into every file; readers refuse a version they do not know.
const SchemaVersion = 1

// Table names, also the top-level directory of each table in a recording.
const (
	TableActivity         = "activity"
	TableLocks            = "locks"
	TableEdges            = "edges"
	TableRelations        = "relations"
	TableTicks            = "ticks"
	TableEvents           = "events"
	TablePgBouncerPools   = "pgbouncer_pools"
	TablePgBouncerServers = "pgbouncer_servers"
	TableOdooModules      = "odoo_modules"
	TablePreparedXacts    = "prepared_xacts"
)

// Tick kinds.
const (
	// TickProbe is the cheap lock-waiter count: only lock_waiters is set.
	TickProbe = "probe"
	// TickFull is a full snapshot of pg_stat_activity, pg_locks and
	// pg_blocking_pids.
	TickFull = "full"
)

// Event kinds.
const (
	EventStart      = "start"      // the recorder started
	EventConnect    = "connect"    // a connection to the server was established
	EventDisconnect = "disconnect" // the connection was lost; a gap begins
	EventGap        = "gap"        // no samples between gap_start and gap_end (the samples' ts on either side)
	EventWarning    = "warning"    // something the analysis should know
	EventStop       = "stop"       // the recorder stopped
	// A wrapped command (capture -- COMMAND): its command line, password
	// removed, when it started; its exit status and duration when it ended.
	EventCommandStart = "command_start"
	EventCommandEnd   = "command_end"
	// EventGuardCancel is a lock waiter the guard cancelled (pid, what it
	// waited for and how long, how many queued behind it, its query).
	EventGuardCancel = "guard_cancel"
)

// Activity is one row of pg_stat_activity in one sample. Nullable columns
// are stored as NULL when PostgreSQL returned NULL or when the server's
// version lacks the column (see Meta.AbsentColumns).
type Activity struct {
	SampleID        int64  `parquet:"sample_id,dict"`
	TS              int64  `parquet:"ts,dict,timestamp(microsecond)"`
	DatID           int64  `parquet:"datid,optional"`
	DatName         string `parquet:"datname,optional,dict"`
	PID             int32  `parquet:"pid"`
	LeaderPID       int32  `parquet:"leader_pid,optional"`
	UseSysID        int64  `parquet:"usesysid,optional"`
	UseName         string `parquet:"usename,optional,dict"`
	ApplicationName string `parquet:"application_name,optional,dict"`
	ClientAddr      string `parquet:"client_addr,optional,dict"`
	ClientHostname  string `parquet:"client_hostname,optional,dict"`
	ClientPort      int32  `parquet:"client_port,optional"`
	BackendStart    int64  `parquet:"backend_start,optional,timestamp(microsecond)"`
	XactStart       int64  `parquet:"xact_start,optional,timestamp(microsecond)"`
	QueryStart      int64  `parquet:"query_start,optional,timestamp(microsecond)"`
	StateChange     int64  `parquet:"state_change,optional,timestamp(microsecond)"`
	WaitEventType   string `parquet:"wait_event_type,optional,dict"`
	WaitEvent       string `parquet:"wait_event,optional,dict"`
	State           string `parquet:"state,optional,dict"`
	BackendXID      int64  `parquet:"backend_xid,optional"`
	BackendXmin     int64  `parquet:"backend_xmin,optional"`
	QueryID         int64  `parquet:"query_id,optional"`
	Query           string `parquet:"query,optional,dict"`
	BackendType     string `parquet:"backend_type,optional,dict"`
}

// Lock is one row of pg_locks in one sample. Every lock-tag column is kept;
// columns where 0 is a legal value (database, page, classid, objid,
// objsubid) are pointers so that NULL and 0 stay distinct.
type Lock struct {
	SampleID           int64  `parquet:"sample_id,dict"`
	TS                 int64  `parquet:"ts,dict,timestamp(microsecond)"`
	LockType           string `parquet:"locktype,dict"`
	Database           *int64 `parquet:"database,optional"`
	Relation           int64  `parquet:"relation,optional,dict"`
	Page               *int32 `parquet:"page,optional"`
	Tuple              int32  `parquet:"tuple,optional"`
	VirtualXID         string `parquet:"virtualxid,optional,dict"`
	TransactionID      int64  `parquet:"transactionid,optional"`
	ClassID            *int64 `parquet:"classid,optional"`
	ObjID              *int64 `parquet:"objid,optional"`
	ObjSubID           *int32 `parquet:"objsubid,optional"`
	VirtualTransaction string `parquet:"virtualtransaction,optional,dict"`
	PID                int32  `parquet:"pid,optional"`
	Mode               string `parquet:"mode,dict"`
	Granted            bool   `parquet:"granted"`
	FastPath           bool   `parquet:"fastpath"`
	WaitStart          int64  `parquet:"waitstart,optional,timestamp(microsecond)"`
}

// Edge is one element of pg_blocking_pids(pid) for a backend waiting on a
// Lock: BlockingPID blocks PID (hard or soft; PostgreSQL does not say
// which). A blocking pid of 0 is a prepared transaction.
type Edge struct {
	SampleID     int64 `parquet:"sample_id,dict"`
	TS           int64 `parquet:"ts,dict,timestamp(microsecond)"`
	PID          int32 `parquet:"pid"`
	BackendStart int64 `parquet:"backend_start,optional,timestamp(microsecond)"`
	BlockingPID  int32 `parquet:"blocking_pid"`
}

// Relation names a relation oid seen in pg_locks. Names can only be
// resolved in the database the recorder is connected to (and for shared
// catalogs); other databases' oids stay unnamed.
type Relation struct {
	SampleID int64  `parquet:"sample_id"`
	Database int64  `parquet:"database"`
	Relation int64  `parquet:"relation"`
	Schema   string `parquet:"nspname,dict"`
	Name     string `parquet:"relname,dict"`
	Kind     string `parquet:"relkind,dict"`
}

// Tick is one sample: when it was taken and what it cost.
type Tick struct {
	SampleID int64 `parquet:"sample_id"`
	// TS is the server's statement_timestamp() of the sample.
	TS int64 `parquet:"ts,timestamp(microsecond)"`
	// ClientTS is the recorder's clock when the sample was sent.
	ClientTS int64  `parquet:"client_ts,timestamp(microsecond)"`
	Kind     string `parquet:"kind,dict"`
	// Mode is the sampling tier in force: "baseline" or "burst".
	Mode string `parquet:"mode,dict"`
	// LockWaiters counts backends with wait_event_type = 'Lock'.
	LockWaiters  int32 `parquet:"lock_waiters"`
	ActivityRows int32 `parquet:"activity_rows"`
	LockRows     int32 `parquet:"lock_rows"`
	EdgeRows     int32 `parquet:"edge_rows"`
	// QueryMicros is the round trip of the sample's queries as the recorder
	// saw it.
	QueryMicros int64 `parquet:"query_us"`
	// ServerMicros is the CPU time the recorder's backend spent on this
	// sample, from /proc when the server shares the recorder's host; NULL
	// otherwise.
	ServerMicros int64 `parquet:"server_cpu_us,optional"`
	// ClientMicros is the recorder's own CPU time for this sample.
	ClientMicros int64 `parquet:"client_cpu_us"`
	CapturePID   int32 `parquet:"capture_pid"`
}

// Event is something that happened to the recorder rather than to the
// server: a connect, a lost connection and the gap it left, a warning.
type Event struct {
	TS         int64  `parquet:"ts,timestamp(microsecond)"`
	Kind       string `parquet:"kind,dict"`
	Message    string `parquet:"message,optional,plain"`
	GapStart   int64  `parquet:"gap_start,optional,timestamp(microsecond)"`
	GapEnd     int64  `parquet:"gap_end,optional,timestamp(microsecond)"`
	CapturePID int32  `parquet:"capture_pid,optional"`
}

// PgBouncerPool is one row of PgBouncer's SHOW POOLS.
type PgBouncerPool struct {
	SampleID  int64  `parquet:"sample_id,dict"`
	TS        int64  `parquet:"ts,dict,timestamp(microsecond)"`
	Database  string `parquet:"database,dict"`
	User      string `parquet:"user,dict"`
	ClActive  int32  `parquet:"cl_active"`
	ClWaiting int32  `parquet:"cl_waiting"`
	SvActive  int32  `parquet:"sv_active"`
	SvIdle    int32  `parquet:"sv_idle"`
	SvUsed    int32  `parquet:"sv_used"`
	SvTested  int32  `parquet:"sv_tested"`
	SvLogin   int32  `parquet:"sv_login"`
	// MaxWaitMicros is maxwait and maxwait_us combined.
	MaxWaitMicros int64  `parquet:"maxwait_us"`
	PoolMode      string `parquet:"pool_mode,optional,dict"`
}

// PgBouncerServer is one row of PgBouncer's SHOW SERVERS. RemotePID is the
// PostgreSQL backend pid of the server connection.
type PgBouncerServer struct {
	SampleID        int64  `parquet:"sample_id,dict"`
	TS              int64  `parquet:"ts,dict,timestamp(microsecond)"`
	Type            string `parquet:"type,dict"`
	User            string `parquet:"user,dict"`
	Database        string `parquet:"database,dict"`
	State           string `parquet:"state,dict"`
	Addr            string `parquet:"addr,optional,dict"`
	Port            int32  `parquet:"port,optional"`
	LocalAddr       string `parquet:"local_addr,optional,dict"`
	LocalPort       int32  `parquet:"local_port,optional"`
	ConnectTime     int64  `parquet:"connect_time,optional,timestamp(microsecond)"`
	RequestTime     int64  `parquet:"request_time,optional,timestamp(microsecond)"`
	RemotePID       int32  `parquet:"remote_pid,optional"`
	ApplicationName string `parquet:"application_name,optional,dict"`
}

// OdooModule is a module of the captured Odoo database whose state is
// pending (to install, to upgrade, to remove), sampled every few seconds.
type OdooModule struct {
	SampleID int64  `parquet:"sample_id"`
	TS       int64  `parquet:"ts,timestamp(microsecond)"`
	Name     string `parquet:"name,dict"`
	State    string `parquet:"state,dict"`
}

// PreparedXact is a row of pg_prepared_xacts in a full sample: a
// transaction prepared for two-phase commit holds its locks with no
// backend (pg_locks shows them with a NULL pid and virtualtransaction
// -1/<transaction>) until ROLLBACK PREPARED or COMMIT PREPARED.
type PreparedXact struct {
	SampleID    int64  `parquet:"sample_id,dict"`
	TS          int64  `parquet:"ts,dict,timestamp(microsecond)"`
	Transaction int64  `parquet:"transaction"`
	GID         string `parquet:"gid,dict"`
	Prepared    int64  `parquet:"prepared,timestamp(microsecond)"`
	Owner       string `parquet:"owner,optional,dict"`
	Database    string `parquet:"database,optional,dict"`
}

// tableDef ties a table name to its schema and Go row type.
type tableDef struct {
	name   string
	schema *parquet.Schema
	// required tables are written even when empty.
	required bool
}

// Indexes into tables. The order is part of the journal format: a record
// names its table by index.
const (
	idxTicks = iota
	idxEvents
	idxActivity
	idxLocks
	idxEdges
	idxRelations
	idxPgBouncerPools
	idxPgBouncerServers
	idxOdooModules
	idxPreparedXacts
	numTables
)

// tables lists every table in the order of the idx constants.
var tables = []tableDef{
	{TableTicks, parquet.SchemaOf(Tick{}), true},
	{TableEvents, parquet.SchemaOf(Event{}), true},
	{TableActivity, parquet.SchemaOf(Activity{}), false},
	{TableLocks, parquet.SchemaOf(Lock{}), false},
	{TableEdges, parquet.SchemaOf(Edge{}), false},
	{TableRelations, parquet.SchemaOf(Relation{}), false},
	{TablePgBouncerPools, parquet.SchemaOf(PgBouncerPool{}), false},
	{TablePgBouncerServers, parquet.SchemaOf(PgBouncerServer{}), false},
	{TableOdooModules, parquet.SchemaOf(OdooModule{}), false},
	{TablePreparedXacts, parquet.SchemaOf(PreparedXact{}), false},
}

// Tables returns the names of all tables, in a fixed order.
func Tables() []string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.name
	}
	return names
}

func tableIndex(name string) (int, error) {
	for i, t := range tables {
		if t.name == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown table %q", name)
}

// Sample is everything one tick recorded. The recorder fills it and hands it
// to the journal in one piece. Tick is nil for a record that carries only
// events (a lost connection, say).
type Sample struct {
	Tick             *Tick
	Activity         []Activity
	Locks            []Lock
	Edges            []Edge
	Relations        []Relation
	Events           []Event
	PgBouncerPools   []PgBouncerPool
	PgBouncerServers []PgBouncerServer
	OdooModules      []OdooModule
	PreparedXacts    []PreparedXact
}
