package recording

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Parquet key-value metadata keys written into every file of a recording.
const (
	KeySchemaVersion = "lockscope.schema_version"
	KeyTable         = "lockscope.table"
	KeyMeta          = "lockscope.meta"
	KeySegment       = "lockscope.segment"
)

// Meta describes the capture that produced a segment. It never holds a
// password: Host, Port, Database and User are copied from the parsed
// connection settings, not from the DSN string.
type Meta struct {
	Segment string `json:"segment"`
	// Cluster is the Hive partition value: the server's system identifier
	// unless the user named the cluster.
	Cluster          string `json:"cluster"`
	LockscopeVersion string `json:"lockscope_version"`
	ServerVersion    string `json:"server_version"`
	ServerVersionNum int    `json:"server_version_num"`
	SystemIdentifier string `json:"system_identifier,omitempty"`
	Host             string `json:"host"`
	Port             int    `json:"port"`
	Database         string `json:"database"`
	User             string `json:"user"`
	// DatabaseOID is the oid of Database: relation names in the relations
	// table are resolvable for this database only.
	DatabaseOID int64 `json:"database_oid"`
	// ApplicationName is the recorder's own application_name, so analysis
	// can leave the recorder out.
	ApplicationName string `json:"application_name"`
	ProbeIntervalMS int64  `json:"probe_interval_ms"`
	FullIntervalMS  int64  `json:"full_interval_ms"`
	BurstIntervalMS int64  `json:"burst_interval_ms"`
	OdooIntervalMS  int64  `json:"odoo_interval_ms,omitempty"`
	QueryMaxBytes   int    `json:"query_max_bytes"`
	// AbsentColumns lists "view.column" names this server does not have
	// (for instance "pg_locks.waitstart" before PostgreSQL 14); they are
	// recorded as NULL.
	AbsentColumns []string `json:"absent_columns"`
	// ReadAllStats is false when the role cannot read other roles' query
	// text (it then reads "<insufficient privilege>").
	ReadAllStats bool `json:"read_all_stats"`
	PgBouncer    bool `json:"pgbouncer"`
	Odoo         bool `json:"odoo"`
	// StartUS and EndUS bound the segment's samples (server clock).
	StartUS int64 `json:"start_us"`
	EndUS   int64 `json:"end_us"`
	// FirstSampleID and LastSampleID bound the segment's sample ids.
	FirstSampleID int64 `json:"first_sample_id"`
	LastSampleID  int64 `json:"last_sample_id"`
	Ticks         int64 `json:"ticks"`
	FullTicks     int64 `json:"full_ticks"`
	// LockWaitTicks counts ticks that saw at least one lock waiter: a
	// segment with any is an incident segment, kept in preference by
	// retention.
	LockWaitTicks  int64 `json:"lock_wait_ticks"`
	MaxLockWaiters int32 `json:"max_lock_waiters"`
	// Recovered is true when the segment was sealed from a journal left
	// behind by a recorder that did not stop cleanly.
	Recovered bool `json:"recovered,omitempty"`
}

// metadataKV returns the key-value metadata of one table file.
func (m *Meta) metadataKV(table string) (map[string]string, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	return map[string]string{
		KeySchemaVersion: strconv.Itoa(SchemaVersion),
		KeyTable:         table,
		KeySegment:       m.Segment,
		KeyMeta:          string(b),
	}, nil
}

// observe folds one tick into the segment's summary.
func (m *Meta) observe(t *Tick) {
	if m.Ticks == 0 || t.TS < m.StartUS {
		m.StartUS = t.TS
	}
	if t.TS > m.EndUS {
		m.EndUS = t.TS
	}
	if m.Ticks == 0 || t.SampleID < m.FirstSampleID {
		m.FirstSampleID = t.SampleID
	}
	if t.SampleID > m.LastSampleID {
		m.LastSampleID = t.SampleID
	}
	m.Ticks++
	if t.Kind == TickFull {
		m.FullTicks++
	}
	if t.LockWaiters > 0 {
		m.LockWaitTicks++
	}
	if t.LockWaiters > m.MaxLockWaiters {
		m.MaxLockWaiters = t.LockWaiters
	}
}

// copySummary copies the fields observe fills from src.
func (m *Meta) copySummary(src *Meta) {
	m.StartUS, m.EndUS = src.StartUS, src.EndUS
	m.FirstSampleID, m.LastSampleID = src.FirstSampleID, src.LastSampleID
	m.Ticks, m.FullTicks = src.Ticks, src.FullTicks
	m.LockWaitTicks, m.MaxLockWaiters = src.LockWaitTicks, src.MaxLockWaiters
}

// Version is lockscope's version, written into every file. The build sets
// it with -ldflags "-X github.com/lockscope/lockscope/capture/recording.Version=…".
var Version = "dev"
