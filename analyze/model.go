package analyze

import "time"

// SchemaVersion is the version of incident.json. It changes when a field
// changes meaning or goes away; new fields may be added within a version.
const SchemaVersion = 1

// Incident kinds.
const (
	// KindDDLLockQueue: a strong lock (one that blocks writes: ALTER TABLE,
	// CREATE INDEX, TRUNCATE, …) requested or held on a relation is part
	// of the queue.
	KindDDLLockQueue = "ddl_lock_queue"
	// KindRowLock: sessions wait for each other's row locks
	// (transactionid, tuple), with no strong relation lock involved.
	KindRowLock = "row_lock_contention"
	// KindHotRow: many short transactions take turns on the same rows;
	// each holder blocks the next briefly and no single session is the
	// cause (churn). No session actions: the fix is in the application.
	KindHotRow = "hot_row_contention"
	// KindDeadlock: sessions waited on each other in a cycle until
	// PostgreSQL's deadlock detector aborted one of them.
	KindDeadlock = "deadlock"
	// KindOnlineDDL: CREATE INDEX CONCURRENTLY, REINDEX … CONCURRENTLY,
	// DROP INDEX CONCURRENTLY or DETACH PARTITION … CONCURRENTLY waits for
	// older transactions to finish (their virtualxid locks).
	KindOnlineDDL = "online_ddl_wait"
	// KindMaintenance: VACUUM or ANALYZE waits for its table lock.
	KindMaintenance = "maintenance_wait"
	// KindAdvisory: sessions wait for advisory locks (job queues,
	// application mutexes).
	KindAdvisory = "advisory_lock_contention"
	// KindOther: any other lock contention (weak relation modes,
	// objects).
	KindOther = "other_lock_contention"
)

// DDL classes: what kind of statement a DDL record is.
const (
	DDLSchema      = "ddl"         // ALTER, CREATE INDEX, TRUNCATE, …: a strong relation lock
	DDLOnline      = "online_ddl"  // … CONCURRENTLY, waiting on older transactions
	DDLMaintenance = "maintenance" // VACUUM or ANALYZE
)

// DDL outcomes.
const (
	OutcomeGranted      = "granted"
	OutcomeCancelled    = "cancelled"
	OutcomeLockTimeout  = "lock_timeout"
	OutcomeTerminated   = "terminated"
	OutcomeStillWaiting = "still_waiting"
	OutcomeHeld         = "held" // the DDL held its lock from the start: it was the blocker
	// OutcomeGaveUp: the wait ended while a blocker still held its lock
	// and the session stayed: a lock_timeout, a statement_timeout or a
	// cancel — the recording cannot tell which.
	OutcomeGaveUp = "gave_up"
	// OutcomeLeftWaiting: the backend went away while its blocker still
	// held the lock: it never got it (terminated, or its client gave up).
	OutcomeLeftWaiting = "left_waiting"
	// OutcomeCompletedOrTerminated: the backend went away between two
	// samples, in the same interval as its blockers released; its lock
	// was never seen granted: it completed and disconnected, or it was
	// terminated — the recording cannot tell which.
	OutcomeCompletedOrTerminated = "completed_or_terminated"
	// OutcomeUnknown: the wait ended in the same interval as its blockers
	// released and the session stayed; the timestamps do not order the
	// two: it got its lock, or it gave up just before.
	OutcomeUnknown = "unknown"
)

// Root blocker endings (RootBlocker.Ending).
const (
	EndingStillBlocking = "still_blocking"
	// EndingTransactionEnded: the backend stayed and its transaction
	// ended (committed or rolled back: pg_stat_activity cannot tell).
	EndingTransactionEnded = "transaction_ended"
	// EndingCommitted: the backend stayed and its last statement, run
	// after the transaction was last seen open, was a COMMIT (or END).
	EndingCommitted = "committed"
	// EndingRolledBack: the backend stayed and its transaction, seen
	// aborted, ended, or its last statement was a ROLLBACK: a rollback.
	EndingRolledBack = "rolled_back"
	// EndingCancelled: a pg_cancel_backend naming it was seen and its
	// locks went away while it stayed.
	EndingCancelled = "cancelled"
	// EndingReleased: the locks went away inside the same transaction (a
	// rollback to a savepoint, a statement's own lock released).
	EndingReleased = "released"
	// EndingKeptLocks: it stopped blocking because nobody waited for it
	// any more; it still held the locks the queue had waited for.
	EndingKeptLocks = "kept_locks"
	// EndingTerminated: the backend went away and a pg_terminate_backend
	// naming it was seen.
	EndingTerminated = "terminated"
	// EndingLeft: the backend went away between two samples, and no
	// terminate naming it was seen: terminated or disconnected, the
	// recording cannot tell which.
	EndingLeft = "left"
	// EndingPreparedResolved: a prepared transaction's locks went away:
	// COMMIT PREPARED or ROLLBACK PREPARED (named when seen).
	EndingPreparedResolved = "prepared_resolved"
	// EndingPreparedRolledBack and EndingPreparedCommitted: the same,
	// with the ROLLBACK PREPARED or COMMIT PREPARED naming it seen.
	EndingPreparedRolledBack = "rolled_back_prepared"
	EndingPreparedCommitted  = "committed_prepared"
)

// Which side ended a queue (Incident.EndedBy).
const (
	EndedByBlocker = "blocker" // the root blocker released or went away
	EndedByWaiter  = "waiter"  // the waiting DDL gave up, was cancelled or went away
	EndedByUnknown = "unknown"
	// EndedByDeadlockDetector: PostgreSQL aborted a member of a deadlock.
	EndedByDeadlockDetector = "deadlock_detector"
)

// Result is what analysis found in a recording.
type Result struct {
	SchemaVersion int        `json:"schema_version"`
	Recording     Recording  `json:"recording"`
	Incidents     []Incident `json:"incidents"`
}

// Recording describes the analysed recording.
type Recording struct {
	Dirs          []string  `json:"dirs"`
	Cluster       string    `json:"cluster"`
	ServerVersion string    `json:"server_version"`
	Database      string    `json:"database"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	Segments      int       `json:"segments"`
	Ticks         int64     `json:"ticks"`
	FullTicks     int64     `json:"full_ticks"`
	Gaps          []Gap     `json:"gaps"`
	// AbsentColumns are columns this server version lacks.
	AbsentColumns []string `json:"absent_columns"`
	ReadAllStats  bool     `json:"read_all_stats"`
	// PendingModules are the Odoo modules still to install, upgrade or
	// remove at the end of the recording (null when not sampled).
	PendingModules []string `json:"pending_modules"`
	// Sampling are the recorder's intervals, in milliseconds.
	ProbeIntervalMS int64 `json:"probe_interval_ms"`
	FullIntervalMS  int64 `json:"full_interval_ms"`
	BurstIntervalMS int64 `json:"burst_interval_ms"`
	// Cost is what the recorder's samples cost, from its ticks.
	Cost RecorderCost `json:"recorder_cost"`
	// Commands are the commands a wrapping capture ran (capture --
	// COMMAND), and GuardCancels what its guard cancelled (see guard.go).
	Commands     []CommandRun  `json:"commands"`
	GuardCancels []GuardCancel `json:"guard_cancels"`
	// Damaged are the segments that could not be read and were left out.
	Damaged []Damaged `json:"damaged"`
}

// Damaged is a segment left out of the analysis: its first file that does
// not open as a lockscope table file, and why.
type Damaged struct {
	File    string `json:"file"`
	Segment string `json:"segment"`
	Reason  string `json:"reason"`
}

// RecorderCost is the observer effect: the recorder's own cost per sample.
type RecorderCost struct {
	MeanQueryMicros     float64 `json:"mean_query_us"`
	MaxQueryMicros      int64   `json:"max_query_us"`
	MeanServerCPUMicros float64 `json:"mean_server_cpu_us"`
	MeanClientCPUMicros float64 `json:"mean_client_cpu_us"`
}

// Gap is a stretch with no samples: "no samples", never "no waiters".
type Gap struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Reason string    `json:"reason"`
}

// Incident is one lock-queue incident.
type Incident struct {
	ID   int    `json:"id"`
	Kind string `json:"kind"`
	// Start is the first sample that saw the queue; End the first that saw
	// it drained (null when the recording ends first).
	Start    time.Time  `json:"start"`
	PeakAt   time.Time  `json:"peak_at"`
	End      *time.Time `json:"end"`
	Duration float64    `json:"duration_s"`
	// PeakWaiters is the most sessions waiting at once; WaiterSeconds
	// the integral of waiting sessions over time.
	PeakWaiters   int           `json:"peak_waiters"`
	WaiterSeconds float64       `json:"waiter_seconds"`
	Relations     []string      `json:"relations"`
	RootBlockers  []RootBlocker `json:"root_blockers"`
	DDL           *DDL          `json:"ddl"`
	// Waiters are every session that waited in the incident.
	Waiters []Session `json:"waiters"`
	// Queue is the queue depth on each relation over time.
	Queue []QueuePoint `json:"queue"`
	// Waiting is how many sessions of the incident waited at each full
	// sample, and for how long that sample stands (to the next sample,
	// gaps excluded): WaiterSeconds is its sum of Waiters × Seconds.
	Waiting []WaitingPoint `json:"waiting"`
	// Gaps inside the incident: sampling was interrupted.
	Gaps []Gap `json:"gaps"`
	// Edges counts the wait-for edges seen, by kind.
	Edges map[string]int `json:"edges"`
	// Samples is how many full samples saw the incident.
	Samples int `json:"samples"`
	// Actions is the containment the runbook prescribes for this
	// incident, in order: cancel before terminate, application and cron
	// blockers first, the migration last.
	Actions []Action `json:"actions"`
	// Protected are sessions the runbook says not to touch (replication,
	// backup, admin), with why they are in the picture.
	Protected []Protected `json:"protected"`
	// WhatIf replays the incident under guardrails that were not set.
	WhatIf []WhatIf `json:"what_if"`
	// Runbook answers the on-call runbook's questions for this incident.
	Runbook Runbook `json:"runbook"`
	// Deadlock is the cycle of a deadlock incident (null otherwise).
	Deadlock *Deadlock `json:"deadlock"`
	// Contention describes row or advisory lock contention with no DDL:
	// the hot object, how often and how long sessions waited, and
	// whether the holders churned (null for other kinds).
	Contention *Contention `json:"contention"`
	// Advice is what to change so it does not happen again, with the
	// evidence for each item.
	Advice []Advice `json:"advice"`
	// EndedBy says which side ended the queue (blocker, waiter, unknown;
	// empty while not drained) and Ending how, in one sentence.
	EndedBy string `json:"ended_by"`
	Ending  string `json:"ending"`
	// Applications is what the incident did to each application's
	// sessions (ApplicationGroup), most waiter-seconds first.
	Applications []AppImpact `json:"applications"`
	// Operator are the statements seen acting on sessions during the
	// incident (pg_cancel_backend, pg_terminate_backend, ROLLBACK
	// PREPARED, COMMIT PREPARED), in time order.
	Operator []OperatorAction `json:"operator_actions"`
	// EdgeLog is every wait-for edge of every sample; it goes to the
	// derived Parquet tables, not to incident.json.
	EdgeLog []EdgeRecord `json:"-"`
}

// Deadlock is a cycle in the wait-for graph: each member waits for a lock
// the next one holds.
type Deadlock struct {
	Members []CycleMember `json:"members"`
	// FirstSeen and LastSeen are the first and last samples that saw
	// the cycle; Stood how long it stood at least, from the latest
	// member's wait start (PostgreSQL 14+) or the first sample.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Stood     float64   `json:"stood_s"`
	// Victim is the member PostgreSQL aborted (pid 0 when the recording
	// cannot tell), with the evidence.
	Victim         int32  `json:"victim_pid"`
	VictimEvidence string `json:"victim_evidence"`
	// LikelyVictim, when Victim is 0, is the member that began waiting
	// first (PostgreSQL 14+): its deadlock_timeout fires first, so it is
	// the one that finds the cycle and aborts, when the members share the
	// setting. A likelihood, not an observation.
	LikelyVictim int32 `json:"likely_victim_pid,omitempty"`
}

// CycleMember is one session of a deadlock cycle, in cycle order.
type CycleMember struct {
	Session
	// WaitsFor is the lock it requested (mode and object); HeldBy the
	// next member, which holds a conflicting lock on it.
	WaitsFor string `json:"waits_for"`
	HeldBy   int32  `json:"held_by"`
}

// Contention summarises lock contention with no DDL.
type Contention struct {
	// Object is the hot object: the relation, and the row when waits
	// queued on a tuple, or the advisory lock.
	Object string `json:"object"`
	// Churn is true when the holders changed from sample to sample,
	// each blocking briefly (see Persistent); ChurnHolders counts the
	// transient holders seen.
	Churn        bool `json:"churn"`
	ChurnHolders int  `json:"churn_holders"`
	// Waits counts the separate waits seen; WaitsPerSecond their rate
	// over the incident; MaxWait and P95Wait how long they lasted, in
	// seconds (as seen by the samples: at least this long).
	Waits          int     `json:"waits"`
	WaitsPerSecond float64 `json:"waits_per_s"`
	MaxWait        float64 `json:"max_wait_s"`
	P95Wait        float64 `json:"p95_wait_s"`
	// Statements are the statements involved, most frequent first.
	Statements []Statement `json:"statements"`
}

// Statement is a statement text and how many sessions were seen running it.
type Statement struct {
	Query    string `json:"query"`
	Sessions int    `json:"sessions"`
}

// Advice is a change that would prevent the incident, with why.
type Advice struct {
	Advice   string `json:"advice"`
	Evidence string `json:"evidence"`
}

// EdgeRecord is one wait-for edge in one sample.
type EdgeRecord struct {
	TS                        time.Time
	WaiterPID, BlockerPID     int32
	WaiterStart, BlockerStart time.Time
	Kind                      string
	Observed                  bool
}

// WhatIf is one guardrail replayed over the recorded timeline, beside
// the actual (Scenario "actual").
type WhatIf struct {
	Scenario      string  `json:"scenario"`
	PeakWaiters   int     `json:"peak_waiters"`
	Duration      float64 `json:"duration_s"`
	WaiterSeconds float64 `json:"waiter_seconds"`
	// Effect says what the guardrail would have done to the sessions.
	Effect string `json:"effect"`
	// Assumptions are what the replay takes for granted.
	Assumptions []string `json:"assumptions"`
}

// Action is one step of containment.
type Action struct {
	PID          int32     `json:"pid"`
	BackendStart time.Time `json:"backend_start"`
	// GID names the prepared transaction a rollback_prepared or
	// commit_prepared acts on (pid 0).
	GID  string `json:"gid,omitempty"`
	Role string `json:"role"`
	// Action is cancel, terminate, rollback_prepared, commit_prepared or
	// leave.
	Action string `json:"action"`
	// SQL is the exact statement to run (empty for leave): for a backend
	// it checks backend_start too, so a reused pid is never hit; for a
	// prepared transaction it must run in Database.
	SQL      string `json:"sql,omitempty"`
	Database string `json:"database,omitempty"`
	Reason   string `json:"reason"`
	// Evidence is what in the recording the action rests on.
	Evidence string `json:"evidence,omitempty"`
}

// Actions.
const (
	ActionCancel           = "cancel"
	ActionTerminate        = "terminate"
	ActionRollbackPrepared = "rollback_prepared"
	ActionCommitPrepared   = "commit_prepared"
	ActionLeave            = "leave"
)

// Protected is a session not to be touched.
type Protected struct {
	Session
	Reason string `json:"reason"`
}

// Session describes a backend as the recording saw it.
type Session struct {
	PID             int32     `json:"pid"`
	BackendStart    time.Time `json:"backend_start"`
	ApplicationName string    `json:"application_name"`
	User            string    `json:"usename"`
	ClientAddr      string    `json:"client_addr,omitempty"`
	// Database is the database it is connected to (for a prepared
	// transaction: the one it was prepared in, where ROLLBACK PREPARED
	// must run).
	Database    string `json:"database,omitempty"`
	BackendType string `json:"backend_type"`
	// GID and Transaction name a prepared transaction (pid 0): it has
	// no backend to cancel or terminate.
	GID         string `json:"gid,omitempty"`
	Transaction int64  `json:"transaction,omitempty"`
	// Role is what the session is (odoo-cron, migration, backup, …) and
	// RoleEvidence the rule that says so.
	Role         string     `json:"role"`
	RoleEvidence string     `json:"role_evidence"`
	State        string     `json:"state"`
	Query        string     `json:"query"`
	XactStart    *time.Time `json:"xact_start"`
	// WaitedFor is how long the session was seen waiting, in seconds.
	WaitedFor float64 `json:"waited_s,omitempty"`
	// Mode and Target are what it waited for.
	Mode   string `json:"mode,omitempty"`
	Target string `json:"target,omitempty"`
}

// RootBlocker is a session at the root of the wait-for graph: it blocks
// others and waits for nothing.
type RootBlocker struct {
	Session
	// TransactionAge is how old its transaction was when it was first
	// seen blocking, in seconds.
	TransactionAge float64 `json:"xact_age_s"`
	// Locks are the granted locks its waiters wait for.
	Locks []HeldLock `json:"locks"`
	// WaiterSeconds is the integral of sessions waiting behind it.
	WaiterSeconds float64   `json:"waiter_seconds"`
	PeakBehind    int       `json:"peak_behind"`
	FirstSeen     time.Time `json:"first_seen"`
	LastSeen      time.Time `json:"last_seen"`
	// Gone is when it stopped blocking (ended, committed, or cancelled);
	// DrainSeconds how long the queue took to drain after that.
	Gone         *time.Time `json:"gone"`
	DrainSeconds *float64   `json:"drain_s"`
	// Persistent is true when the same backend and transaction was seen
	// blocking across samples for at least a second (see SCHEMA.md);
	// transient holders of hot-row churn are not root blockers.
	Persistent bool `json:"persistent"`
	// Ended is true when the backend itself disappeared (terminated or
	// disconnected), false when it stayed and released its locks.
	Ended bool `json:"ended"`
	// Outcome is what the recording shows happened to it, coarsely:
	// "terminated" (the backend went away and a terminate naming it was
	// seen), "gone" (the backend went away, cause not seen), "released"
	// (its locks went away while it stayed connected), "kept locks" (it
	// stopped blocking because the waiters gave up), or "still blocking".
	Outcome string `json:"outcome"`
	// Ending is the same, finer (Ending* constants), and EndingEvidence
	// the samples that show it.
	Ending         string `json:"ending"`
	EndingEvidence string `json:"ending_evidence"`
}

// AppImpact is what an incident did to one application's sessions.
type AppImpact struct {
	// Application is the ApplicationGroup, Role the sessions' role: one
	// entry per pair.
	Application string `json:"application"`
	Role        string `json:"role"`
	// Connected is how many of its sessions the peak sample saw
	// connected, and WaitingAtPeak how many of them were waiting.
	Connected     int `json:"connected_at_peak"`
	WaitingAtPeak int `json:"waiting_at_peak"`
	// Waited is how many of its sessions waited at some point, for at
	// most MaxWait seconds, WaiterSeconds in all.
	Waited        int     `json:"waited"`
	MaxWait       float64 `json:"max_wait_s"`
	WaiterSeconds float64 `json:"waiter_seconds"`
}

// OperatorAction is a statement seen acting on another session: the
// recording shows who ran it and when, not always whom it named.
type OperatorAction struct {
	// At is the statement's query_start; SeenAt the sample that showed it.
	At              time.Time `json:"at"`
	SeenAt          time.Time `json:"seen_at"`
	PID             int32     `json:"pid"`
	BackendStart    time.Time `json:"backend_start"`
	ApplicationName string    `json:"application_name"`
	User            string    `json:"usename"`
	// Action is cancel, terminate, rollback_prepared or commit_prepared.
	Action string `json:"action"`
	// Target is the pid it named (0 when the text does not show it: a
	// bound parameter); GID the prepared transaction's.
	Target int32  `json:"target_pid"`
	GID    string `json:"gid,omitempty"`
	Query  string `json:"query"`
}

// Attempt is one try of the DDL to get its lock.
type Attempt struct {
	// Start is when it was first seen waiting (or, for an attempt never
	// seen waiting, its statement's query_start); End the first sample
	// after it ended.
	Start   time.Time  `json:"start"`
	End     *time.Time `json:"end"`
	Waited  float64    `json:"waited_s"`
	Outcome string     `json:"outcome"`
	// Evidence says what shows the outcome.
	Evidence string `json:"evidence"`
}

// HeldLock is a granted lock.
type HeldLock struct {
	Target string `json:"target"`
	Mode   string `json:"mode"`
}

// DDL is the strong lock request at the heart of a DDL lock queue.
type DDL struct {
	PID             int32     `json:"pid"`
	BackendStart    time.Time `json:"backend_start"`
	ApplicationName string    `json:"application_name"`
	Query           string    `json:"query"`
	Relation        string    `json:"relation"`
	Mode            string    `json:"mode"`
	// Waited is how long it was seen waiting for its lock, in seconds;
	// Attempts how many separate waits (retries after lock_timeout).
	Waited   float64 `json:"waited_s"`
	Attempts int     `json:"attempts"`
	Outcome  string  `json:"outcome"`
	Evidence string  `json:"evidence"`
	// QueuedBehind is the most sessions seen waiting behind it.
	QueuedBehind int `json:"queued_behind"`
	// Class is ddl, online_ddl (… CONCURRENTLY, waiting on older
	// transactions) or maintenance (VACUUM, ANALYZE).
	Class string `json:"class"`
	// WaitPhase says what it waited for, in words.
	WaitPhase string `json:"wait_phase,omitempty"`
	// FirstWait is when it was first seen waiting, Settled the first
	// sample after its last wait ended (null when it never waited or
	// still waits).
	FirstWait *time.Time `json:"first_wait"`
	Settled   *time.Time `json:"settled"`
	// AttemptLog is every attempt, the last one's outcome being Outcome.
	AttemptLog []Attempt `json:"attempt_log"`
	// XactStart is when the DDL's transaction began.
	XactStart *time.Time `json:"xact_start"`
	// LockStatement is the statement seen taking the lock ("" when no
	// sample saw it); QueryNote says when Query, the statement running
	// when first seen, is not what took the lock.
	LockStatement string `json:"lock_statement"`
	QueryNote     string `json:"query_note"`
	// Commit says how the transaction that got the lock ended, for a DDL
	// that got it: committed, rolled_back, open (when the recording
	// ends) or cannot_tell; "" when it never got its lock.
	// CommitEvidence says what shows it.
	Commit         string `json:"commit,omitempty"`
	CommitEvidence string `json:"commit_evidence,omitempty"`
}

// WaitingPoint is the number of waiting sessions at one sample.
type WaitingPoint struct {
	TS      time.Time `json:"ts"`
	Waiters int       `json:"waiters"`
	Seconds float64   `json:"seconds"`
	// ByApplication splits Waiters by "application (role)", the
	// application being ApplicationGroup's.
	ByApplication map[string]int `json:"by_application"`
}

// WaiterSecondsBetween integrates the incident's waiting sessions over
// [from, to]: the part of WaiterSeconds that fell in that stretch.
func (x *Incident) WaiterSecondsBetween(from, to time.Time) float64 {
	var sum float64
	for _, p := range x.Waiting {
		end := p.TS.Add(time.Duration(p.Seconds * float64(time.Second)))
		a, b := max(p.TS.UnixMicro(), from.UnixMicro()), min(end.UnixMicro(), to.UnixMicro())
		if b > a {
			sum += float64(p.Waiters) * float64(b-a) / 1e6
		}
	}
	return round3(sum)
}

// QueuePoint is the lock queue on one relation at one sample.
type QueuePoint struct {
	TS       time.Time `json:"ts"`
	Relation string    `json:"relation"`
	Depth    int       `json:"depth"`
	Head     int32     `json:"head_pid"`
	HeadMode string    `json:"head_mode"`
	// Rate is the change in depth per second since the previous sample
	// (positive: growing); RateSmoothed the same, smoothed over ~2 s.
	Rate         float64 `json:"rate"`
	RateSmoothed float64 `json:"rate_smoothed"`
}
