package analyze

import (
	"time"

	"github.com/lockscope/lockscope/capture/recording"
)

type incState struct {
	id        int
	lastNodes map[Backend]bool
	start     int64
	lastSeen  int64
	end       int64 // 0 while open
	samples   int
	peak      int
	peakAt    int64
	waiterSec float64
	lastCount int
	relations map[string]bool
	roots     map[Backend]*rootState
	waiters   map[Backend]*waiterState
	ddls      map[Backend]*ddlState
	queue     []QueuePoint
	edgeKinds map[string]int
	strong    bool
	rowOnly   bool
	gaps      []Gap
	// protected are sessions with protected roles in the incident or
	// holding locks on its relations.
	protected map[Backend]*Protected
	// series is the incident sample by sample, for the what-if replays.
	series    []point
	edgeLog   []EdgeRecord
	lastQueue map[string]queueState
	// advisory and nonAdvisory: waits on advisory locks, and on
	// anything else.
	advisory, nonAdvisory bool
	// open and closed wait episodes, for the contention summary;
	// objects counts waits by hot object; queries counts the sessions
	// seen running each statement.
	episodes map[episodeKey]*episode
	closed   []float64
	objects  map[string]int
	queries  map[string]map[Backend]bool
	// cycle is the deadlock seen, if any.
	cycle *cycleState
	// drains are the samples that saw the queue drained (it may re-form
	// and rejoin the incident): between them and the next queue, no one
	// waited.
	drains []int64
	ops    []OperatorAction
	// peakConnected and peakWaiting count sessions by application at
	// the peak sample.
	peakConnected, peakWaiting map[string]int
}

// queueState is a relation's queue at its previous sample.
type queueState struct {
	ts       int64
	depth    int
	smoothed float64
}

// queueSmoothing is the time constant of the smoothed queue growth rate,
// in seconds.
const queueSmoothing = 2.0

// point is one sample of an incident: how many waited, for how long the
// sample stands (until the next one, gaps excluded), and how many waited
// behind each DDL.
type point struct {
	ts      int64
	dt      float64
	waiters int
	behind  map[Backend]int
	byApp   map[string]int
}

type rootState struct {
	info    Session
	xactAge float64
	// idleSince is when it went idle in transaction (state_change), 0
	// when it was not idle in transaction when first seen.
	idleSince  int64
	locks      []HeldLock
	waiterSec  float64
	lastBehind int
	peakBehind int
	first      int64
	last       int64
	gone       int64
	ended      bool
	// lastAct is its activity in the last sample that saw it blocking;
	// ending and evidence how it stopped.
	lastAct  recording.Activity
	ending   string
	evidence string
	// xact identifies the transaction it blocked with (xact_start, or
	// the prepared time); streakStart is when the current run of
	// consecutive samples seeing that transaction block began, and
	// maxStreak the longest such run, in µs.
	xact        int64
	streakStart int64
	maxStreak   int64
	// prepared: a prepared transaction; nonRow: it blocked a wait on
	// something other than a row (a relation, a virtualxid, …).
	prepared bool
	nonRow   bool
}

// persistMin is how long the same backend and transaction must be seen
// blocking, over consecutive samples, to be a persistent root blocker
// rather than a transient holder of hot-row churn.
const persistMin = time.Second

// persistent reports whether a root blocker is one a person can act on:
// a prepared transaction, one that blocked anything but row waits, or
// one seen blocking in the same transaction for persistMin.
func (r *rootState) persistent() bool {
	return r.prepared || r.nonRow || r.maxStreak >= persistMin.Microseconds()
}

// episode is one wait of one session on one object.
type episode struct {
	waitStart   int64 // from pg_locks.waitstart, 0 when absent
	first, last int64
}

func (e *episode) seconds() float64 {
	start := e.first
	if e.waitStart != 0 && e.waitStart < start {
		start = e.waitStart
	}
	return float64(e.last-start) / 1e6
}

type episodeKey struct {
	b Backend
	t tag
}

type waiterState struct {
	info   Session
	first  int64
	last   int64
	waited float64
}

type ddlState struct {
	backend  Backend
	info     Session
	relation string
	mode     string
	held     bool
	waiting  bool
	attempts int
	waited   float64
	lastWait int64
	// firstWait is when it was first seen waiting; settled when its last
	// wait ended.
	firstWait, settled int64
	behind             int
	outcome            string
	evidence           string
	// tag and blockers: what it waited for in its last waiting sample,
	// and who held a conflicting lock on it then.
	tag      tag
	blockers []Backend
	// class is ddl, online_ddl or maintenance.
	class string
	// olderSeen are the older transactions an online DDL was seen
	// waiting for.
	olderSeen map[Backend]bool
	// The current attempt: when it began and how long had been waited
	// before it; the statement's query_start and text.
	waitedBefore float64
	curStartTS   int64
	queryStart   int64
	lastQuery    string
	xactStart    int64
	// follow: watch the session after a wait it gave up, until
	// followUntil, for a retry that is never seen waiting.
	follow      bool
	followUntil int64
	log         []Attempt
	gaveUpAfter []int64 // how long each attempt that gave up lasted (µs)
	lockStmt    string
	queryNote   string
	// cw follows its transaction after the grant of its lock; commit
	// says how that transaction ended (Commit*), with its evidence.
	cw                     commitWatch
	commit, commitEvidence string
}
