// Package lab stages a real lock-queue incident on a throwaway PostgreSQL
// for a trainee to contain with psql, exactly as in production, records
// the drill, and scores the response against the runbook: time to
// containment, the right pid first, cancel before terminate, no protected
// session touched, no bystander killed, and waiter-seconds against the
// best possible.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/capture"
	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/fixtures/scenario"
)

// Config is what a drill needs.
type Config struct {
	// Scenario is the incident to stage (see scenario.Scenarios).
	Scenario string
	// DSN is a disposable server to stage on; empty starts a throwaway
	// local PostgreSQL that is removed afterwards.
	DSN string
	// Out keeps the drill's recording; empty records into a temporary
	// directory removed at the end.
	Out string
	// TimeLimit ends an uncontained drill (default 15 minutes).
	TimeLimit time.Duration
	// Settle is how long the queue must stay empty to count as drained
	// (default 2 s): a retrying migration empties it between attempts.
	Settle time.Duration
	Stage  scenario.Options
	Logger *slog.Logger
	// Ready is called once the incident stands, with the trainee's brief
	// (tests drive a scripted trainee from it).
	Ready func(Brief)
}

// Brief is what the trainee is told.
type Brief struct {
	DSN      string
	Scenario string
	// Staged is what was staged: for tests and the debrief, not for the
	// trainee.
	Staged scenario.Truth
}

// Event is something the trainee did to a staged session, as seen from
// the server: its statement cancelled, or its backend terminated.
type Event struct {
	At   time.Time `json:"at"`
	PID  int32     `json:"pid"`
	Name string    `json:"name"` // what the session played: cron, ddl, worker-3, pg_dump
	Role string    `json:"role"`
	What string    `json:"what"` // cancelled or terminated
}

// Score is the assessment of a drill.
type Score struct {
	Scenario  string    `json:"scenario"`
	HandedOut time.Time `json:"handed_over"`
	// Contained is true when the queue drained within the time limit;
	// Drained is when it emptied for good.
	Contained     bool          `json:"contained"`
	Drained       time.Time     `json:"drained"`
	TimeToContain time.Duration `json:"time_to_contain_ns"`
	Events        []Event       `json:"events"`
	// Criteria, each with points earned of points possible and why.
	Criteria []Criterion `json:"criteria"`
	Points   int         `json:"points"`
	// WaiterSeconds is the drill's blast radius from its recording; Best
	// what it would have been had the root blocker been released the
	// moment the drill was handed over.
	WaiterSeconds float64 `json:"waiter_seconds"`
	Best          float64 `json:"best_waiter_seconds"`
	Recording     string  `json:"recording,omitempty"`
	// RootState is the root blocker's state when the drill was handed
	// over (active, idle in transaction).
	RootState string `json:"root_state"`
}

// Criterion is one scored aspect of the response.
type Criterion struct {
	Name   string `json:"name"`
	Earned int    `json:"earned"`
	Of     int    `json:"of"`
	Why    string `json:"why"`
}

// ErrNotStaged wraps failures to set the drill up.
var ErrNotStaged = errors.New("the drill could not be staged")

// Run sets up the drill, waits for the trainee to contain it (or for the
// time limit, or ctx's end: Ctrl-C), scores the response and cleans up
// everything it started, also when ctx ends early.
func Run(ctx context.Context, cfg Config) (*Score, error) {
	if cfg.TimeLimit == 0 {
		cfg.TimeLimit = 15 * time.Minute
	}
	if cfg.Settle == 0 {
		cfg.Settle = 2 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sc, ok := scenario.Lookup(cfg.Scenario)
	if !ok {
		return nil, fmt.Errorf("no scenario %q: pick one of %s", cfg.Scenario, strings.Join(Names(), ", "))
	}
	// Cleanup and scoring must run after Ctrl-C: they get a context of
	// their own.
	bg := context.WithoutCancel(ctx)

	dsn := cfg.DSN
	if dsn == "" {
		log.Info("starting a throwaway PostgreSQL")
		srv, err := pgtest.Start(ctx, pgtest.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotStaged, err)
		}
		defer srv.Stop()
		if dsn, err = srv.CreateDatabase(ctx, "odoo"); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotStaged, err)
		}
	}
	out := cfg.Out
	if out == "" {
		tmp, err := os.MkdirTemp("", "lockscope-lab-")
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotStaged, err)
		}
		defer os.RemoveAll(tmp)
		out = filepath.Join(tmp, "recording")
	}
	if err := scenario.LoadSchema(ctx, dsn); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotStaged, err)
	}

	// The recorder, at a rate that shows every step of the response.
	ticks := make(chan recording.Tick, 64)
	rctx, stopRecorder := context.WithCancel(bg)
	defer stopRecorder()
	recDone := make(chan error, 1)
	go func() {
		recDone <- capture.Run(rctx, capture.Config{DSN: dsn, Out: out, ProbeInterval: 100 * time.Millisecond,
			FullInterval: time.Second, BurstInterval: 250 * time.Millisecond, BurstHold: 2 * time.Second,
			Logger: log.With("component", "capture"),
			OnTick: func(t recording.Tick) {
				select {
				case ticks <- t:
				default:
				}
			}})
	}()
	recorderStopped := false
	stopRec := func() error {
		if recorderStopped {
			return nil
		}
		recorderStopped = true
		stopRecorder()
		return <-recDone
	}
	defer stopRec()
	select {
	case <-ticks:
	case err := <-recDone:
		recorderStopped = true
		return nil, fmt.Errorf("%w: the recorder stopped: %v", ErrNotStaged, err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	log.Info("staging the incident", "scenario", sc.Name)
	inc, err := sc.Stage(ctx, dsn, cfg.Stage)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotStaged, err)
	}
	defer inc.Close()
	admin, err := pgx.Connect(bg, dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotStaged, err)
	}
	defer admin.Close(bg)

	score := &Score{Scenario: sc.Name, HandedOut: time.Now().UTC(), Recording: cfg.Out}
	if cfg.Ready != nil {
		cfg.Ready(Brief{DSN: dsn, Scenario: sc.Name, Staged: inc.Truth})
	}
	watchErr := watch(ctx, admin, inc, cfg, score)

	// Let the recorder see the end, then stop everything it recorded.
	if score.Contained {
		sleep(bg, 1500*time.Millisecond)
	}
	inc.Close()
	if err := stopRec(); err != nil {
		return nil, fmt.Errorf("the drill's recorder: %w", err)
	}
	if watchErr != nil && !errors.Is(watchErr, context.Canceled) {
		return nil, watchErr
	}
	// Every wait of the drill counts, however short.
	res, err := analyze.Run(bg, analyze.Config{Dirs: []string{out}, Logger: log, MinDuration: time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("analyse the drill: %w", err)
	}
	assess(score, inc.Truth, res)
	return score, nil
}

// Names lists the scenarios a drill can stage.
func Names() []string {
	var n []string
	for _, s := range scenario.Scenarios {
		n = append(n, s.Name)
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// watch follows the staged sessions from the server every 100 ms until the
// queue has drained for cfg.Settle, the time limit passes or ctx ends:
// which sessions the trainee cancelled (their statement failed with
// query_canceled) or terminated (their backend went away).
func watch(ctx context.Context, admin *pgx.Conn, inc *scenario.Incident, cfg Config, score *Score) error {
	truth := inc.Truth
	who := map[int32]scenario.TruthSession{}
	for _, s := range append(append([]scenario.TruthSession{truth.Root, truth.DDL}, truth.Waiters...), truth.Bystanders...) {
		if s.PID != 0 {
			who[s.PID] = s
		}
	}
	pids := inc.PIDs()
	seen := map[int32]string{}
	note := func(pid int32, what string) {
		if seen[pid] == what || seen[pid] == "terminated" {
			return
		}
		seen[pid] = what
		s, ok := who[pid]
		if !ok {
			if st := inc.Session(pid); st != nil {
				s = scenario.TruthSession{Name: st.Name, Role: st.Role, PID: pid}
			}
		}
		score.Events = append(score.Events, Event{At: time.Now().UTC(), PID: pid, Name: s.Name, Role: s.Role, What: what})
	}
	if err := admin.QueryRow(ctx, "SELECT coalesce(state, '') FROM pg_stat_activity WHERE pid = $1", truth.Root.PID).Scan(&score.RootState); err != nil {
		return fmt.Errorf("read the root blocker's state: %w", err)
	}
	limit := time.NewTimer(cfg.TimeLimit)
	defer limit.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var emptySince time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-limit.C:
			return nil
		case <-tick.C:
		}
		rows, err := admin.Query(ctx, "SELECT pid, coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = ANY($1)", pids)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("follow the drill's sessions: %w", err)
		}
		alive := map[int32]bool{}
		waiting := 0
		for rows.Next() {
			var pid int32
			var w bool
			if err := rows.Scan(&pid, &w); err != nil {
				rows.Close()
				return err
			}
			alive[pid] = true
			if w {
				waiting++
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("follow the drill's sessions: %w", err)
		}
		for _, pid := range pids {
			if !alive[pid] {
				note(pid, "terminated")
				continue
			}
			if s := inc.Session(pid); s != nil {
				var pgErr *pgconn.PgError
				if done, err := s.Outcome(); done && errors.As(err, &pgErr) && pgErr.Code == "57014" {
					note(pid, "cancelled")
				}
			}
		}
		now := time.Now().UTC()
		if waiting > 0 {
			emptySince = time.Time{}
			continue
		}
		if emptySince.IsZero() {
			emptySince = now
		}
		if now.Sub(emptySince) >= cfg.Settle {
			score.Contained, score.Drained = true, emptySince
			score.TimeToContain = emptySince.Sub(score.HandedOut)
			return nil
		}
	}
}

// assess scores the response from the events and the drill's analysis.
func assess(s *Score, truth scenario.Truth, res *analyze.Result) {
	var inc *analyze.Incident
	for i := range res.Incidents {
		if inc == nil || res.Incidents[i].WaiterSeconds > inc.WaiterSeconds {
			inc = &res.Incidents[i]
		}
	}
	if inc != nil {
		for i := range res.Incidents {
			s.WaiterSeconds += res.Incidents[i].WaiterSeconds
		}
		s.Best = inc.WaiterSecondsBetween(inc.Start, s.HandedOut)
	}
	add := func(name string, earned, of int, why string) {
		s.Criteria = append(s.Criteria, Criterion{name, earned, of, why})
		s.Points += earned
	}
	if s.Contained {
		add("contained", 30, 30, fmt.Sprintf("the queue drained %.1f s after the drill was handed over", s.TimeToContain.Seconds()))
	} else {
		add("contained", 0, 30, "the queue had not drained when the drill ended")
	}

	root := truth.Root
	if len(s.Events) == 0 {
		add("right session first", 0, 20, "no staged session was cancelled or terminated")
	} else if first := s.Events[0]; first.PID == root.PID {
		add("right session first", 20, 20, fmt.Sprintf("pid %d (%s), the root blocker, was the first session acted on", root.PID, root.Name))
	} else {
		add("right session first", 0, 20, fmt.Sprintf("the first session acted on was pid %d (%s, %s); the root blocker was pid %d (%s)", first.PID, first.Name, first.Role, root.PID, root.Name))
	}

	// What the runbook prescribes for the root blocker: cancel a running
	// statement; terminate a session idle in transaction.
	prescribed := "terminate"
	if s.RootState == "active" {
		prescribed = "cancel"
	}
	rootEvents := slices.DeleteFunc(slices.Clone(s.Events), func(e Event) bool { return e.PID != root.PID })
	switch {
	case len(rootEvents) == 0:
		add("cancel before terminate", 0, 15, fmt.Sprintf("the root blocker pid %d was never released by the trainee", root.PID))
	case prescribed == "cancel" && rootEvents[0].What == "terminated":
		add("cancel before terminate", 0, 15, fmt.Sprintf("pid %d was running a statement: pg_cancel_backend would have released it and kept the session; it was terminated without a cancel first", root.PID))
	case prescribed == "cancel":
		add("cancel before terminate", 15, 15, fmt.Sprintf("pid %d was running a statement and was cancelled, as the runbook asks first", root.PID))
	default:
		add("cancel before terminate", 15, 15, fmt.Sprintf("pid %d sat %s: a cancel has nothing to cancel, terminating it is the runbook's escalation", root.PID, s.RootState))
	}

	protected := map[int32]bool{}
	for _, b := range truth.Bystanders {
		protected[b.PID] = true
	}
	var touched, collateral []string
	for _, e := range s.Events {
		switch {
		case protected[e.PID]:
			touched = append(touched, fmt.Sprintf("pid %d (%s, %s) %s", e.PID, e.Name, e.Role, e.What))
		case e.PID != root.PID:
			collateral = append(collateral, fmt.Sprintf("pid %d (%s, %s) %s", e.PID, e.Name, e.Role, e.What))
		}
	}
	if len(s.Events) == 0 {
		add("protected sessions left alone", 0, 20, "nothing was done: leaving sessions alone earns nothing when the queue is left standing")
		add("no collateral", 0, 15, "nothing was done")
		return
	}
	switch {
	case len(truth.Bystanders) == 0 && len(touched) == 0:
		add("protected sessions left alone", 20, 20, "no backup, replication or admin session was in the picture; none was touched")
	case len(touched) == 0:
		add("protected sessions left alone", 20, 20, fmt.Sprintf("the %s session (pid %d) was left alone", truth.Bystanders[0].Role, truth.Bystanders[0].PID))
	default:
		add("protected sessions left alone", 0, 20, "touched: "+strings.Join(touched, "; ")+" — the runbook: do not terminate replication/backup/admin sessions unless explicitly validated")
	}
	if len(collateral) == 0 {
		add("no collateral", 15, 15, "only the root blocker was acted on")
	} else {
		add("no collateral", 0, 15, "also acted on: "+strings.Join(collateral, "; ")+" — the runbook: avoid bulk-killing, touch the migration last")
	}
}

// Write prints a score for the trainee.
func (s *Score) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Drill %s: %d of 100 points.\n", s.Scenario, s.Points)
	for _, c := range s.Criteria {
		fmt.Fprintf(&b, "  %2d/%-2d %s: %s\n", c.Earned, c.Of, c.Name, c.Why)
	}
	if len(s.Events) > 0 {
		b.WriteString("What you did, as the server saw it:\n")
		for _, e := range s.Events {
			fmt.Fprintf(&b, "  T+%.1fs  %s pid %d (%s, %s)\n", e.At.Sub(s.HandedOut).Seconds(), e.What, e.PID, e.Name, e.Role)
		}
	}
	fmt.Fprintf(&b, "Blast radius: %.1f waiter-seconds; the best possible from the hand-over was %.1f (releasing the root blocker at once).\n", s.WaiterSeconds, s.Best)
	if s.Recording != "" {
		fmt.Fprintf(&b, "The drill's recording: %s (lockscope analyze / replay / train it).\n", s.Recording)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
