// Package capture records PostgreSQL lock activity into a lockscope
// recording.
//
// The recorder keeps one connection to the server and samples in two tiers:
// a cheap count of lock waiters every ProbeInterval, and a full snapshot of
// pg_stat_activity, pg_locks and pg_blocking_pids (for lock waiters only)
// every FullInterval, or every BurstInterval while backends wait on locks.
// Samples go to a journal that is sealed into Parquet segments on rotation
// (see package recording). The recorder's own session is read-only, runs
// with short statement and lock timeouts and never keeps a transaction open
// between samples.
//
// When the server goes away the recorder keeps running, reconnects with
// backoff and records the gap. Run returns nil when its context is
// cancelled or its Duration has passed, after sealing the open segment.
package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lockscope/lockscope/capture/recording"
)

// ErrStorage wraps failures to write the recording (a full disk, a
// directory made read-only): capture stops, and every closed segment stays
// valid.
var ErrStorage = errors.New("cannot write the recording")

// Run records until ctx is cancelled or cfg.Duration has passed.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return fmt.Errorf("capture config: %w", err)
	}
	cc, red, err := parseDSN(cfg.DSN, cfg)
	if err != nil {
		return err
	}
	var bouncer *pgbouncer
	if cfg.PgBouncerDSN != "" {
		if bouncer, err = newPgBouncer(cfg.PgBouncerDSN); err != nil {
			return err
		}
		red.secrets = append(red.secrets, bouncer.cc.Password)
	}
	log := cfg.Logger

	unlock, err := recording.LockDir(cfg.Out)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	defer unlock()
	if err := checkWritable(cfg.Out); err != nil {
		return err
	}
	recovered, err := recording.Recover(cfg.Out)
	if err != nil {
		return fmt.Errorf("recover the previous capture's open segment: %w", err)
	}
	for _, res := range recovered {
		if res.Empty {
			continue
		}
		log.Warn("recovered segment left open by a previous capture", "segment", res.Segment.Meta.Segment,
			"ticks", res.Segment.Meta.Ticks, "damage", res.Damage)
	}
	// Damaged segments (a disk that filled, a copy cut short, a file of
	// another tool) stay where they are: named once here and in an event,
	// never read, removed only by retention like any other segment.
	segs, err := recording.Scan(cfg.Out)
	if err != nil {
		return err
	}
	var damaged []recording.Event
	for _, s := range segs {
		if d := s.Damage; d != nil {
			log.Warn("damaged segment left in place, not read", "segment", s.Meta.Segment, "file", d.File, "reason", d.Reason)
			damaged = append(damaged, recording.Event{TS: time.Now().UnixMicro(), Kind: recording.EventWarning,
				Message: fmt.Sprintf("damaged segment %s left in place, not read: %s: %s", s.Meta.Segment, d.File, d.Reason)})
		}
	}

	conn, srv, err := connect(ctx, cc, red)
	if err != nil {
		return err
	}
	if cfg.GuardWait > 0 {
		if err := checkGuardPrivilege(ctx, conn, srv); err != nil {
			conn.Close(context.Background())
			return err
		}
	}
	cfg.Metrics.setMaxAge(HealthMaxAge(cfg))
	r := &recorder{
		cfg: cfg, cc: cc, red: red, log: log, bouncer: bouncer,
		segs:   segs,
		seals:  make(chan string, 16),
		failed: make(chan error, 1),
		local:  isLocal(cc.Host),
		guard:  newGuard(cfg),
	}
	r.damaged = damaged
	for _, s := range segs {
		r.nextID = max(r.nextID, s.Meta.LastSampleID)
	}
	r.nextID++
	r.firstID = r.nextID
	return r.run(ctx, conn, srv)
}

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func isLocal(host string) bool {
	if strings.HasPrefix(host, "/") || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// recorder is the state of one capture run.
type recorder struct {
	cfg     Config
	cc      *pgx.ConnConfig
	red     redactor
	log     *slog.Logger
	bouncer *pgbouncer
	local   bool

	conn    *pgx.Conn
	srv     *server
	sampler *sampler
	cpu     *backendCPU
	guard   *guard

	journal                   *recording.JournalWriter
	segStart                  time.Time
	lastSync                  time.Time
	identity                  string
	nextID                    int64
	firstID                   int64             // the first sample id of this run
	pending                   []recording.Event // events waiting for the next record
	damaged                   []recording.Event // warnings of damaged segments, for the first record
	warnedPriv, warnedBouncer bool
	lastWarn                  string

	// sampling state
	burst               bool
	lastFull, lastProbe time.Time
	lastWait, lastOdoo  time.Time
	lastOK              time.Time
	// lastTS is the server time (statement_timestamp) of the last sample
	// written: gaps are stated on the samples' clock.
	lastTS      int64
	reconnectAt time.Time
	backoff     time.Duration

	// sealing runs in its own goroutine; segs is its list of sealed
	// segments, for retention.
	segs       []recording.Segment
	seals      chan string
	closeSeals sync.Once
	failed     chan error
	wg         sync.WaitGroup
}

func (r *recorder) run(ctx context.Context, conn *pgx.Conn, srv *server) error {
	r.wg.Add(1)
	go r.sealLoop()
	defer func() {
		r.finishSeals()
		if r.conn != nil {
			r.conn.Close(context.Background())
		}
		if r.bouncer != nil {
			r.bouncer.close()
		}
	}()

	now := time.Now()
	r.event(recording.EventStart, fmt.Sprintf("lockscope %s capture of %s", recording.Version, describe(r.cc)))
	r.pending = append(r.pending, r.damaged...)
	if err := r.attach(conn, srv, now); err != nil {
		conn.Close(context.Background())
		return err
	}
	r.log.Info("capture started", "out", r.cfg.Out, "server", describe(r.cc), "server_version", srv.version,
		"segment", r.journal.Segment())

	period := min(r.cfg.ProbeInterval, r.cfg.BurstInterval)
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	var deadline <-chan time.Time
	if r.cfg.Duration > 0 {
		t := time.NewTimer(r.cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return r.stop(stopReason(ctx))
		case e := <-r.cfg.Events:
			r.external(e)
			continue
		case <-deadline:
			return r.stop("duration reached")
		case err := <-r.failed:
			return r.abort(err)
		case <-ticker.C:
		}
		now := time.Now()
		if r.conn == nil {
			if now.Before(r.reconnectAt) {
				continue
			}
			if err := r.reconnect(ctx, now); err != nil {
				if errors.Is(err, ErrStorage) {
					return r.abort(err)
				}
				if ctx.Err() != nil {
					return r.stop(stopReason(ctx))
				}
				continue
			}
		}
		if err := r.tick(ctx, now, period); err != nil {
			switch {
			case errors.Is(err, ErrStorage):
				return r.abort(err)
			case ctx.Err() != nil:
				return r.stop(stopReason(ctx))
			case isConnectionError(r.conn, err):
				r.lost(now, err)
			default:
				r.warn(now, "sample failed", err)
			}
		}
		if err := r.maintain(now); err != nil {
			return r.abort(err)
		}
	}
}

// attach starts using a new connection, rotating the segment when the
// server's identity changed (or when there is no segment yet).
func (r *recorder) attach(conn *pgx.Conn, srv *server, now time.Time) error {
	s, err := newSampler(conn, srv, r.cfg.QueryMax)
	if err != nil {
		return err
	}
	r.conn, r.srv, r.sampler = conn, srv, s
	r.cpu = newBackendCPU(srv.backendPID, r.local)
	r.lastOK = now
	r.backoff = 0
	r.event(recording.EventConnect, fmt.Sprintf("connected to %s, PostgreSQL %s, backend pid %d", describe(r.cc), srv.version, srv.backendPID))
	if !srv.readAllStats && !r.warnedPriv {
		r.warnedPriv = true
		msg := fmt.Sprintf("role %s is not a member of pg_read_all_stats (grant it pg_monitor): other roles' query text reads <insufficient privilege> and their wait events are hidden; lock waiters are found through pg_locks instead", srv.user)
		r.log.Warn("insufficient privilege", "detail", msg)
		r.event(recording.EventWarning, msg)
	}
	if len(s.q.absent) > 0 {
		r.log.Info("columns absent on this server version are recorded as NULL", "columns", strings.Join(s.q.absent, ","))
	}
	if r.journal == nil || srv.identity() != r.identity {
		if err := r.rotate(now); err != nil {
			return err
		}
	}
	r.identity = srv.identity()
	return nil
}

// meta describes the segment being opened.
func (r *recorder) meta(segment string) recording.Meta {
	srv := r.srv
	cluster := r.cfg.Cluster
	if cluster == "" {
		cluster = srv.sysid
	}
	if cluster == "" {
		cluster = fmt.Sprintf("%s_%d", r.cc.Host, r.cc.Port)
	}
	m := recording.Meta{
		Segment: segment, Cluster: recording.SanitizeCluster(cluster),
		LockscopeVersion: recording.Version, ServerVersion: srv.version, ServerVersionNum: srv.versionNum,
		SystemIdentifier: srv.sysid, Host: r.cc.Host, Port: int(r.cc.Port), Database: srv.database, User: srv.user,
		DatabaseOID: srv.databaseOID, ApplicationName: ApplicationName,
		ProbeIntervalMS: r.cfg.ProbeInterval.Milliseconds(), FullIntervalMS: r.cfg.FullInterval.Milliseconds(),
		BurstIntervalMS: r.cfg.BurstInterval.Milliseconds(), QueryMaxBytes: r.cfg.QueryMax,
		AbsentColumns: append([]string{}, r.sampler.q.absent...), ReadAllStats: srv.readAllStats,
		PgBouncer: r.bouncer != nil, Odoo: srv.odoo,
	}
	if srv.odoo {
		m.OdooIntervalMS = r.cfg.OdooInterval.Milliseconds()
	}
	return m
}

// rotate closes the open segment (handing it to the sealer) and opens the
// next one.
func (r *recorder) rotate(now time.Time) error {
	id := recording.NewSegmentID(now)
	if r.journal != nil {
		if id == r.journal.Segment() {
			id = recording.NewSegmentID(now.Add(time.Microsecond))
		}
		if err := r.closeJournal(); err != nil {
			return err
		}
	}
	j, err := recording.CreateJournal(r.cfg.Out, r.meta(id))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	r.journal, r.segStart, r.lastSync = j, now, now
	if r.sampler != nil {
		r.sampler.newSegment()
	}
	return r.flushEvents()
}

func (r *recorder) closeJournal() error {
	path := r.journal.Path()
	err := r.journal.Close()
	r.journal = nil
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	r.seals <- path
	return nil
}

// event queues an event for the next journal record.
func (r *recorder) event(kind, msg string) {
	e := recording.Event{TS: time.Now().UnixMicro(), Kind: kind, Message: r.red.clean(msg)}
	if r.srv != nil {
		e.CapturePID = r.srv.backendPID
	}
	r.pending = append(r.pending, e)
}

// external queues an event handed in through Config.Events.
func (r *recorder) external(e recording.Event) {
	e.Message = r.red.clean(e.Message)
	if r.srv != nil {
		e.CapturePID = r.srv.backendPID
	}
	r.pending = append(r.pending, e)
}

// stopReason is the cause the capture's context was cancelled with, when
// one was given ("command exited with status 1"), else a signal.
func stopReason(ctx context.Context) string {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) && !errors.Is(c, context.DeadlineExceeded) {
		return c.Error()
	}
	return "stopped by signal"
}

// flushEvents writes queued events as a record of their own.
func (r *recorder) flushEvents() error {
	if len(r.pending) == 0 || r.journal == nil {
		return nil
	}
	s := recording.Sample{Events: r.pending}
	r.pending = nil
	n, err := r.journal.Append(&s)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	r.cfg.Metrics.wrote(n)
	return nil
}

// tick takes one sample: a probe, or a full snapshot when one is due or the
// probe found waiters.
func (r *recorder) tick(ctx context.Context, now time.Time, period time.Duration) error {
	slack := period / 2
	interval := r.cfg.FullInterval
	if r.burst {
		interval = r.cfg.BurstInterval
	}
	full := now.Sub(r.lastFull) >= interval-slack
	if !full && now.Sub(r.lastProbe) < r.cfg.ProbeInterval-slack {
		return nil
	}
	tick := &recording.Tick{SampleID: r.nextID, ClientTS: now.UnixMicro(), CapturePID: r.srv.backendPID}
	sample := recording.Sample{Tick: tick}
	cpu0 := processCPU()
	srv0, srvOK := r.cpu.read()
	if !full {
		ts, waiters, err := r.sampler.probe(ctx)
		if err != nil {
			return err
		}
		r.lastProbe = now
		tick.Kind, tick.TS, tick.LockWaiters = recording.TickProbe, ts.UnixMicro(), waiters
		// Waiters appeared: go to the burst rate and look at once.
		full = int(waiters) >= r.cfg.BurstThreshold
	}
	if full {
		tick.Kind, tick.LockWaiters = recording.TickFull, 0
		if err := r.sampler.full(ctx, &sample, tick.SampleID); err != nil {
			return err
		}
		r.lastFull, r.lastProbe = now, now
		if r.srv.odoo && now.Sub(r.lastOdoo) >= r.cfg.OdooInterval {
			r.lastOdoo = now
			if _, err := r.sampler.odooModules(ctx, &sample, tick.SampleID, tick.TS); err != nil {
				if isConnectionError(r.conn, err) {
					return err
				}
				r.warn(now, "odoo module poll failed", err)
			}
		}
		if r.bouncer != nil {
			if err := r.bouncer.sample(ctx, &sample, tick.SampleID, tick.TS); err != nil {
				if !r.warnedBouncer {
					r.warnedBouncer = true
					r.log.Warn("pgbouncer sample failed; retrying on every full sample", "err", err)
					r.event(recording.EventWarning, err.Error())
				}
			} else if r.warnedBouncer {
				r.warnedBouncer = false
				r.event(recording.EventConnect, "PgBouncer sampling resumed")
			}
		}
	}
	tick.QueryMicros = time.Since(now).Microseconds()
	if srv1, ok := r.cpu.read(); ok && srvOK {
		tick.ServerMicros = max(srv1-srv0, 1)
	}
	// The tier for the next tick.
	if int(tick.LockWaiters) >= r.cfg.BurstThreshold {
		if !r.burst {
			r.log.Info("lock waiters seen: burst sampling", "waiters", tick.LockWaiters)
		}
		r.burst, r.lastWait = true, now
	} else if r.burst && now.Sub(r.lastWait) >= r.cfg.BurstHold {
		r.burst = false
		r.log.Info("lock queue drained: baseline sampling")
	}
	tick.Mode = "baseline"
	if r.burst {
		tick.Mode = "burst"
	}
	for i := range r.pending {
		if e := &r.pending[i]; e.Kind == recording.EventGap {
			e.GapEnd = tick.TS
		}
	}
	sample.Events, r.pending = r.pending, nil
	tick.ClientMicros = processCPU() - cpu0
	n, err := r.journal.Append(&sample)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	r.nextID++
	r.lastOK, r.lastTS = now, tick.TS
	r.lastWarn = ""
	r.cfg.Metrics.tick(tick, n, time.Now())
	// The guard and the window read the sample just written: they cost
	// no query (the guard sends one only when it acts).
	var q *lockQueue
	if tick.Kind == recording.TickFull && (r.guard != nil || r.cfg.Window != nil) {
		q = newLockQueue(&sample)
	}
	r.cfg.Window.observe(tick, q, r.relationName)
	if r.guard != nil && q != nil {
		r.runGuard(ctx, q)
	}
	if r.cfg.OnTick != nil {
		r.cfg.OnTick(*tick)
	}
	return nil
}

// lost records a lost connection; the loop reconnects with backoff.
func (r *recorder) lost(now time.Time, err error) {
	msg := r.red.clean(err.Error())
	r.log.Warn("connection lost; reconnecting", "err", msg)
	r.event(recording.EventDisconnect, msg)
	if r.conn != nil {
		r.conn.Close(context.Background())
	}
	r.conn, r.sampler, r.cpu = nil, nil, nil
	r.backoff = 100 * time.Millisecond
	r.reconnectAt = now.Add(r.backoff)
}

func (r *recorder) reconnect(ctx context.Context, now time.Time) error {
	conn, srv, err := connect(ctx, r.cc, r.red)
	if err != nil {
		r.backoff = min(max(r.backoff*2, 100*time.Millisecond), r.cfg.ReconnectMax)
		r.reconnectAt = time.Now().Add(r.backoff)
		r.log.Debug("reconnect failed", "err", err, "retry_in", r.backoff)
		return err
	}
	gapStart := r.lastOK
	if err := r.attach(conn, srv, time.Now()); err != nil {
		return err
	}
	// The gap runs from the last sample before it to the first after it
	// (GapEnd is set when that sample is written), on the server's clock
	// like the samples; the recorder's clock stands in for a side it has
	// not seen.
	start := gapStart.UnixMicro()
	if r.lastTS != 0 {
		start = r.lastTS
	}
	e := recording.Event{TS: time.Now().UnixMicro(), Kind: recording.EventGap, CapturePID: srv.backendPID,
		GapStart: start, GapEnd: now.UnixMicro(),
		Message: fmt.Sprintf("no samples for %v while the server was unreachable", now.Sub(gapStart).Round(time.Millisecond))}
	r.pending = append(r.pending, e)
	r.cfg.Metrics.reconnected()
	r.log.Info("reconnected", "gap", now.Sub(gapStart).Round(time.Millisecond), "backend_pid", srv.backendPID)
	// Look at the server at once: it may have come back into an incident.
	r.lastFull = time.Time{}
	return nil
}

// warn logs a failed sample once per distinct message and records it.
func (r *recorder) warn(now time.Time, what string, err error) {
	msg := r.red.clean(err.Error())
	if msg == r.lastWarn {
		return
	}
	r.lastWarn = msg
	r.log.Warn(what, "err", msg)
	r.event(recording.EventWarning, what+": "+msg)
}

// maintain rotates and syncs the journal when due.
func (r *recorder) maintain(now time.Time) error {
	if r.journal == nil {
		return nil
	}
	if now.Sub(r.segStart) >= r.cfg.SegmentDuration || r.journal.Size() >= r.cfg.SegmentBytes {
		return r.rotate(now)
	}
	if err := r.flushEvents(); err != nil {
		return err
	}
	if now.Sub(r.lastSync) >= r.cfg.SyncInterval {
		r.lastSync = now
		if err := r.journal.Sync(); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	return nil
}

// stop closes the open segment and waits for it to be sealed.
func (r *recorder) stop(why string) error {
	for drained := false; !drained; {
		select {
		case e := <-r.cfg.Events:
			r.external(e)
		default:
			drained = true
		}
	}
	r.event(recording.EventStop, why)
	if err := r.flushEvents(); err != nil {
		return r.abort(err)
	}
	if r.journal != nil {
		if err := r.closeJournal(); err != nil {
			return r.abort(err)
		}
	}
	err := r.finishSeals()
	r.log.Info("capture stopped", "reason", why, "samples", r.nextID-r.firstID, "peak_rss_kib", peakRSS())
	return err
}

// abort ends a capture that cannot go on writing. The journal ends on a
// whole record; it is sealed now if the disk allows, else on the next
// start or by `lockscope recover`.
func (r *recorder) abort(cause error) error {
	if r.journal != nil {
		path := r.journal.Path()
		r.journal.Close()
		r.journal = nil
		r.seals <- path
	}
	if err := r.finishSeals(); err != nil {
		r.log.Warn("open segment left as a journal", "err", err)
	}
	return fmt.Errorf("%w; closed segments are intact: free space or fix permissions in %s, then run `lockscope recover %s` or restart the capture", cause, r.cfg.Out, r.cfg.Out)
}

// finishSeals lets the sealer finish the journals handed to it and returns
// its first error. It may be called more than once.
func (r *recorder) finishSeals() error {
	r.closeSeals.Do(func() { close(r.seals) })
	r.wg.Wait()
	select {
	case err := <-r.failed:
		return err
	default:
		return nil
	}
}

// sealLoop seals closed journals, applies retention and rewrites the
// manifest. It reports the first storage error on r.failed.
func (r *recorder) sealLoop() {
	defer r.wg.Done()
	for path := range r.seals {
		res, err := recording.Seal(r.cfg.Out, path, false)
		if err != nil {
			r.report(fmt.Errorf("%w: %w", ErrStorage, err))
			continue
		}
		if res.Empty {
			continue
		}
		r.log.Debug("segment sealed", "segment", res.Segment.Meta.Segment, "ticks", res.Segment.Meta.Ticks, "bytes", res.Segment.Bytes)
		r.segs = append(r.segs, res.Segment)
		before := len(r.segs)
		r.segs = applyRetention(r.segs, r.cfg, time.Now(), r.log)
		r.cfg.Metrics.segments(1, before-len(r.segs))
		if err := recording.WriteManifest(r.cfg.Out, r.segs); err != nil {
			r.report(fmt.Errorf("%w: %w", ErrStorage, err))
		}
	}
}

func (r *recorder) report(err error) {
	select {
	case r.failed <- err:
	default:
	}
}
