package capture

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lockscope/lockscope/capture/recording"
)

// ErrGuardPrivilege is returned when the guard is asked for but the
// recorder's role cannot cancel other sessions' queries.
var ErrGuardPrivilege = errors.New("the guard cannot cancel queries")

// GuardCancel is one query the guard cancelled.
type GuardCancel struct {
	// TS is the server time of the sample the decision was taken on.
	TS time.Time
	recording.GuardCancel
}

// guard is the lock_timeout a deploy did not set, applied from outside:
// it cancels a session that has waited longer than cfg.GuardWait for a
// Share-or-stronger relation lock with at least cfg.GuardQueue sessions
// queued behind it. It decides from the full samples the recorder takes
// anyway, and sends a statement only when it acts.
type guard struct {
	wait  time.Duration
	queue int
	app   string
	// acted holds the waits already dealt with (cancelled or refused), so
	// that one wait gets one cancel; a retried statement is a new wait.
	acted map[waitKey]bool
	// firstSeen is when each wait was first seen, for servers without
	// pg_locks.waitstart.
	firstSeen firstSeen
}

func newGuard(cfg Config) *guard {
	if cfg.GuardWait <= 0 {
		return nil
	}
	return &guard{wait: cfg.GuardWait, queue: cfg.GuardQueue, app: cfg.GuardApplication,
		acted: map[waitKey]bool{}, firstSeen: firstSeen{}}
}

// candidates returns the waiters of q the guard should cancel, sorted by
// pid. It never returns a root blocker (they wait for nothing), a waiter
// for a weaker lock or for a lock on something other than a relation, nor
// one below its bounds.
func (g *guard) candidates(q *lockQueue, self int32) []*waiter {
	g.firstSeen = g.firstSeen.next(q)
	var out []*waiter
	for _, w := range q.waiters {
		if w.pid == self || !w.isStrong() || g.acted[w.key()] {
			continue
		}
		if g.app != "" {
			if ok, _ := path.Match(g.app, w.app); !ok {
				continue
			}
		}
		start := g.firstSeen.waitStart(w)
		if time.Duration(q.ts-start)*time.Microsecond < g.wait {
			continue
		}
		if q.queuedBehind(w.pid) < g.queue {
			continue
		}
		out = append(out, w)
	}
	// Waits that ended are forgotten; acted keys go with them.
	for k := range g.acted {
		if _, ok := g.firstSeen[k]; !ok {
			delete(g.acted, k)
		}
	}
	sortWaiters(out)
	return out
}

func sortWaiters(ws []*waiter) {
	slices.SortFunc(ws, func(a, b *waiter) int { return int(a.pid) - int(b.pid) })
}

// sqlGuardCancel cancels the backend only if it is still the same backend
// waiting on a lock in the same statement the sample saw: the wait may
// have ended between the sample and now, and the guard must never cancel
// a statement that is running.
const sqlGuardCancel = `SELECT pg_cancel_backend(pid) FROM pg_stat_activity
WHERE pid = $1 AND backend_start = $2 AND query_start = $3 AND wait_event_type = 'Lock'`

// cancel sends the cancel for w. done is false when the wait had already
// ended (nothing was sent, or the backend was gone).
func (g *guard) cancel(ctx context.Context, conn *pgx.Conn, w *waiter) (done bool, err error) {
	g.acted[w.key()] = true
	var ok bool
	err = conn.QueryRow(ctx, sqlGuardCancel, w.pid, time.UnixMicro(w.backendStart), time.UnixMicro(w.queryStart)).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		// PostgreSQL 16+ says why in the detail ("Only roles with the
		// SUPERUSER attribute may cancel queries of roles with the
		// SUPERUSER attribute."); older versions in the message.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Detail != "" {
			return false, fmt.Errorf("cancel pid %d: %w: %s", w.pid, err, pgErr.Detail)
		}
		return false, fmt.Errorf("cancel pid %d: %w", w.pid, err)
	}
	return ok, nil
}

// sqlGuardPrivilege says whether the role can cancel other roles'
// queries: a superuser, or a member of pg_signal_backend (which still
// cannot cancel a superuser's query).
const sqlGuardPrivilege = `SELECT current_user, rolsuper OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')
FROM pg_roles WHERE rolname = current_user`

// checkGuardPrivilege refuses the guard when the role cannot cancel
// queries or cannot see other sessions' wait events.
func checkGuardPrivilege(ctx context.Context, conn *pgx.Conn, srv *server) error {
	var user string
	var ok bool
	if err := conn.QueryRow(ctx, sqlGuardPrivilege).Scan(&user, &ok); err != nil {
		return fmt.Errorf("check the guard's privileges: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: role %s is not a member of pg_signal_backend (GRANT pg_signal_backend TO %s, or drop --guard-wait)", ErrGuardPrivilege, user, user)
	}
	if !srv.readAllStats {
		return fmt.Errorf("%w: role %s cannot see other sessions' lock waits (GRANT pg_monitor TO %s, or drop --guard-wait)", ErrGuardPrivilege, user, user)
	}
	return nil
}

// runGuard acts on one full sample: it cancels the waiters over the
// bounds and records each cancel (or the refusal) as an event.
func (r *recorder) runGuard(ctx context.Context, q *lockQueue) {
	for _, w := range r.guard.candidates(q, r.srv.backendPID) {
		rel := r.relationName(w.relation)
		start := r.guard.firstSeen.waitStart(w)
		c := GuardCancel{TS: time.UnixMicro(q.ts).UTC(), GuardCancel: recording.GuardCancel{PID: w.pid, App: w.app,
			Query: truncate(w.query, r.cfg.QueryMax), Mode: w.mode, Relation: rel,
			Waited: time.Duration(q.ts-start) * time.Microsecond, Behind: q.queuedBehind(w.pid)}}
		done, err := r.guard.cancel(ctx, r.conn, w)
		if err != nil {
			msg := fmt.Sprintf("guard: could not cancel pid %d waiting for %s on %s: %s", w.pid, w.mode, rel, r.red.clean(err.Error()))
			r.log.Warn("guard could not cancel", "pid", w.pid, "err", r.red.clean(err.Error()))
			r.event(recording.EventWarning, msg)
			continue
		}
		if !done {
			continue
		}
		r.log.Warn("guard cancelled a lock waiter", "pid", w.pid, "application_name", w.app, "mode", w.mode,
			"relation", rel, "waited", c.Waited.Round(time.Millisecond), "queued_behind", c.Behind)
		r.event(recording.EventGuardCancel, c.Message())
		r.cfg.Metrics.guardCancel()
		r.cfg.Window.guardCancel(c)
	}
}

// relationName names a relation oid from the sampler's cache.
func (r *recorder) relationName(oid int64) string {
	if r.sampler != nil {
		if rel := r.sampler.names[uint32(oid)]; rel != nil {
			if rel.Schema == "public" || rel.Schema == "" {
				return rel.Name
			}
			return rel.Schema + "." + rel.Name
		}
	}
	return fmt.Sprintf("relation %d", oid)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
