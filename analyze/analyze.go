// Package analyze replays a lockscope recording offline and explains its
// lock-queue incidents.
//
// For every full sample it rebuilds the wait-for graph: hard edges from
// pg_locks (the blocker holds a conflicting lock, matched on every lock-tag
// column NULL-safely), soft edges observed by pg_blocking_pids (the blocker
// waits ahead in the queue), and soft edges inferred from waitstart order
// where pg_blocking_pids did not confirm them. Backends are (pid,
// backend_start); the recorder's own session is left out. Incidents are
// the connected parts of that graph followed from sample to sample: their
// root blockers, the DDL at their heart, their blast radius in
// waiter-seconds, and how they ended. Gaps in the recording are carried
// through, never read as "no waiters".
//
// analyze reads recordings with Arrow and needs no database.
package analyze

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/lockscope/lockscope/capture/recording"
)

// Config is what Run needs.
type Config struct {
	// Dirs are recording directories, analysed as one timeline.
	Dirs []string
	// Since and Until bound the analysed time (zero: unbounded).
	Since, Until time.Time
	// Cluster picks one cluster where the directories hold several.
	Cluster string
	// MinDuration drops lock waits shorter than this (default 1s): a busy
	// server has brief row-lock waits all the time.
	MinDuration time.Duration
	// MergeWithin joins a queue that re-forms this soon after draining,
	// around the same root blocker or DDL, to the incident before it
	// (default 10s): a migration retrying after lock_timeout is one
	// incident, not many.
	MergeWithin time.Duration
	Logger      *slog.Logger
	// Strict makes a damaged segment an error; by default it is skipped,
	// logged and listed in Recording.Damaged.
	Strict bool
	// Allocator for Arrow buffers (default: Go's allocator).
	Allocator memory.Allocator
}

// ErrEmpty reports a recording with nothing to analyse.
var ErrEmpty = errors.New("no samples to analyse")

// Run analyses the recording.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.MinDuration == 0 {
		cfg.MinDuration = time.Second
	}
	if cfg.MergeWithin == 0 {
		cfg.MergeWithin = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Allocator == nil {
		cfg.Allocator = memory.NewGoAllocator()
	}
	segs, damaged, err := segments(cfg)
	if err != nil {
		return nil, err
	}

	res := &Result{SchemaVersion: SchemaVersion, Incidents: []Incident{}}
	rec := &res.Recording
	rec.Dirs = cfg.Dirs
	rec.Damaged = append([]Damaged{}, damaged...)
	first, last := segs[0].Meta, segs[len(segs)-1].Meta
	rec.Cluster, rec.ServerVersion, rec.Database = first.Cluster, last.ServerVersion, last.Database
	rec.Segments = len(segs)
	rec.AbsentColumns, rec.ReadAllStats = last.AbsentColumns, last.ReadAllStats
	rec.ProbeIntervalMS, rec.FullIntervalMS, rec.BurstIntervalMS = last.ProbeIntervalMS, last.FullIntervalMS, last.BurstIntervalMS
	if rec.AbsentColumns == nil {
		rec.AbsentColumns = []string{}
	}

	rels, events, err := readSmallTables(ctx, cfg, segs)
	if err != nil {
		return nil, err
	}
	rec.Gaps = gapsOf(events, segs)

	tr := newTracker(cfg.MinDuration, cfg.MergeWithin, rels, rec.Gaps)
	for _, s := range segs {
		tr.odoo = tr.odoo || s.Meta.Odoo
	}
	st := &stream{ctx: ctx, mem: cfg.Allocator, segs: segs, since: cfg.Since.UnixMicro(), until: cfg.Until.UnixMicro()}
	if cfg.Since.IsZero() {
		st.since = 0
	}
	if cfg.Until.IsZero() {
		st.until = 0
	}
	defer st.close()
	var snap snapshot
	var cost costSum
	var lastOdooTS int64
	var lastOdoo []string
	for st.next(&snap) {
		if len(snap.odoo) > 0 {
			lastOdooTS, lastOdoo = snap.tick.TS, lastOdoo[:0]
			for _, m := range snap.odoo {
				lastOdoo = append(lastOdoo, m.Name+" ("+m.State+")")
			}
		}
		if rec.Ticks == 0 {
			rec.Start = time.UnixMicro(snap.tick.TS).UTC()
		}
		rec.End = time.UnixMicro(snap.tick.TS).UTC()
		rec.Ticks++
		cost.add(&snap.tick)
		if snap.tick.Kind != recording.TickFull {
			continue
		}
		rec.FullTicks++
		tr.noticeStatements(snap.activity)
		tr.observe(buildGraph(&snap, len(tr.open) == 0 && !tr.following()))
	}
	if st.err != nil {
		return nil, st.err
	}
	if rec.Ticks == 0 {
		return nil, fmt.Errorf("analyze %v: %w", cfg.Dirs, ErrEmpty)
	}
	// Modules polled every OdooInterval: none seen in the last polls
	// means none pending.
	if tr.odoo {
		rec.PendingModules = []string{}
		if interval := last.OdooIntervalMS * 1000; lastOdooTS != 0 && rec.End.UnixMicro()-lastOdooTS <= 2*max(interval, 1e6) {
			rec.PendingModules = append(rec.PendingModules, lastOdoo...)
		}
	}
	rec.Cost = cost.result()
	res.Incidents = tr.finish(rec.PendingModules)
	deployEvents(res, events)
	return res, nil
}

// readSmallTables reads the relation names and the events of every
// segment up front: they are small.
func readSmallTables(ctx context.Context, cfg Config, segs []recording.Segment) (map[int64]string, []recording.Event, error) {
	rels := map[int64]string{}
	var events []recording.Event
	for _, s := range segs {
		if err := readAll(ctx, cfg.Allocator, s.Files[recording.TableRelations], convRelation, func(r *recording.Relation) {
			name := r.Name
			if r.Schema != "public" && r.Schema != "" {
				name = r.Schema + "." + r.Name
			}
			rels[r.Relation] = name
		}); err != nil {
			return nil, nil, err
		}
		if err := readAll(ctx, cfg.Allocator, s.Files[recording.TableEvents], convEvent, func(e *recording.Event) {
			events = append(events, *e)
		}); err != nil {
			return nil, nil, err
		}
	}
	return rels, events, nil
}

// gapsOf lists the stretches with no samples: the recorder's gap events,
// and the holes between two runs of it. Between two segments of one run
// nothing is lost; a recorder that was not running leaves a hole the
// next run's start event marks.
func gapsOf(events []recording.Event, segs []recording.Segment) []Gap {
	gaps := []Gap{}
	for _, e := range events {
		if e.Kind == recording.EventGap {
			gaps = append(gaps, Gap{Start: time.UnixMicro(e.GapStart).UTC(), End: time.UnixMicro(e.GapEnd).UTC(), Reason: e.Message})
		}
	}
	for i := 1; i < len(segs); i++ {
		prev, next := segs[i-1].Meta, segs[i].Meta
		if hole := next.StartUS - prev.EndUS; hole > 2*max(prev.FullIntervalMS, prev.ProbeIntervalMS)*1000+1e6 && !coveredByGap(gaps, prev.EndUS, next.StartUS) {
			gaps = append(gaps, Gap{Start: time.UnixMicro(prev.EndUS).UTC(), End: time.UnixMicro(next.StartUS).UTC(), Reason: "no recorder running"})
		}
	}
	return gaps
}

// segments lists the sealed segments of cfg's directories within its time
// window and cluster, in time order, and the damaged ones beside them.
// Damaged segments are left out and logged as warnings, once there is a
// good segment to analyse; with cfg.Strict the first one is an error. With
// no good segment at all the error names the first damaged one.
func segments(cfg Config) ([]recording.Segment, []Damaged, error) {
	if len(cfg.Dirs) == 0 {
		return nil, nil, errors.New("analyze: no recording directory given")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var segs, bad []recording.Segment
	for _, dir := range cfg.Dirs {
		s, err := recording.Scan(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("analyze: %w", err)
		}
		if js, _ := recording.Journals(dir); len(js) > 0 {
			cfg.Logger.Warn("the recording has an open segment (a capture is running, or was killed): run `lockscope recover` to include it", "dir", dir)
		}
		cfg.Logger.Debug("sealed segments", "dir", dir, "segments", len(s))
		for _, seg := range s {
			if seg.Damage != nil {
				bad = append(bad, seg)
			} else {
				segs = append(segs, seg)
			}
		}
	}
	outside := func(s recording.Segment) bool {
		return (cfg.Cluster != "" && s.Meta.Cluster != cfg.Cluster) ||
			(!cfg.Since.IsZero() && s.Meta.EndUS < cfg.Since.UnixMicro()) ||
			(!cfg.Until.IsZero() && s.Meta.StartUS > cfg.Until.UnixMicro())
	}
	segs = slices.DeleteFunc(segs, outside)
	bad = slices.DeleteFunc(bad, outside)
	var damaged []Damaged
	for _, s := range bad {
		damaged = append(damaged, Damaged{File: s.Damage.File, Segment: s.Meta.Segment, Reason: s.Damage.Reason})
	}
	if len(bad) > 0 && (cfg.Strict || len(segs) == 0) {
		how := "no readable segment beside it"
		if cfg.Strict {
			how = fmt.Sprintf("%d damaged segment(s) and --strict", len(bad))
		}
		return nil, nil, fmt.Errorf("analyze: %w (%s)", bad[0].Damage.Err, how)
	}
	if len(segs) == 0 {
		return nil, nil, fmt.Errorf("analyze %v: %w (no sealed segments in range)", cfg.Dirs, ErrEmpty)
	}
	clusters := map[string]bool{}
	for _, s := range segs {
		clusters[s.Meta.Cluster] = true
	}
	if len(clusters) > 1 {
		return nil, nil, fmt.Errorf("analyze: the recordings hold %d clusters (%s); pick one with --cluster", len(clusters), strings.Join(sortedKeys(clusters), ", "))
	}
	slices.SortFunc(segs, func(a, b recording.Segment) int {
		switch {
		case a.Meta.StartUS < b.Meta.StartUS:
			return -1
		case a.Meta.StartUS > b.Meta.StartUS:
			return 1
		}
		return 0
	})
	for _, d := range damaged {
		cfg.Logger.Warn("damaged segment skipped (--strict makes it an error)", "file", d.File, "reason", d.Reason)
	}
	return segs, damaged, nil
}

func coveredByGap(gaps []Gap, a, b int64) bool {
	for _, g := range gaps {
		if g.Start.UnixMicro() <= a+1e6 && g.End.UnixMicro() >= b-1e6 {
			return true
		}
	}
	return false
}

// readAll reads every row of one table file, if the segment has it.
func readAll[T any](ctx context.Context, mem memory.Allocator, path string, conv func(columns) (func(int, *T), error), fn func(*T)) error {
	if path == "" {
		return nil
	}
	c := newCursor(ctx, mem, []string{path}, conv)
	defer c.close()
	var row T
	for c.peek(&row) {
		fn(&row)
		c.skip()
	}
	return c.err
}

// stream yields the recording's samples in order, each with its rows,
// merging the tables of each segment by sample id.
type stream struct {
	ctx          context.Context
	mem          memory.Allocator
	segs         []recording.Segment
	since, until int64
	seg          int
	app          string
	ticks        *cursor[recording.Tick]
	activity     *cursor[recording.Activity]
	locks        *cursor[recording.Lock]
	edges        *cursor[recording.Edge]
	odoo         *cursor[recording.OdooModule]
	servers      *cursor[recording.PgBouncerServer]
	prepared     *cursor[recording.PreparedXact]
	err          error
}

func (s *stream) open(i int) {
	s.close()
	seg := s.segs[i]
	files := func(t string) []string {
		if p, ok := seg.Files[t]; ok {
			return []string{p}
		}
		return nil
	}
	s.app = seg.Meta.ApplicationName
	s.ticks = newCursor(s.ctx, s.mem, files(recording.TableTicks), convTick)
	s.activity = newCursor(s.ctx, s.mem, files(recording.TableActivity), convActivity)
	s.locks = newCursor(s.ctx, s.mem, files(recording.TableLocks), convLock)
	s.edges = newCursor(s.ctx, s.mem, files(recording.TableEdges), convEdge)
	s.odoo = newCursor(s.ctx, s.mem, files(recording.TableOdooModules), convOdooModule)
	s.servers = newCursor(s.ctx, s.mem, files(recording.TablePgBouncerServers), convPgBouncerServer)
	s.prepared = newCursor(s.ctx, s.mem, files(recording.TablePreparedXacts), convPreparedXact)
}

func (s *stream) close() {
	s.ticks.close()
	s.activity.close()
	s.locks.close()
	s.edges.close()
	s.odoo.close()
	s.servers.close()
	s.prepared.close()
}

// take appends the rows of sample id from c to dst, skipping older rows.
func take[T any](c *cursor[T], id int64, sampleID func(*T) int64, dst []T) []T {
	var row T
	for c.peek(&row) {
		sid := sampleID(&row)
		if sid > id {
			break
		}
		if sid == id {
			dst = append(dst, row)
		}
		c.skip()
	}
	return dst
}

func (s *stream) next(snap *snapshot) bool {
	if s.err != nil {
		return false
	}
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return false
	}
	for {
		if s.ticks == nil {
			if s.seg >= len(s.segs) {
				return false
			}
			s.open(s.seg)
			s.seg++
		}
		var t recording.Tick
		if !s.ticks.peek(&t) {
			if s.err = firstErr(s.ticks.err, s.activity.err, s.locks.err, s.edges.err, s.odoo.err, s.servers.err, s.prepared.err); s.err != nil {
				return false
			}
			s.close()
			s.ticks = nil
			continue
		}
		s.ticks.skip()
		snap.tick = t
		snap.recorderApp = s.app
		snap.activity = take(s.activity, t.SampleID, func(a *recording.Activity) int64 { return a.SampleID }, snap.activity[:0])
		snap.locks = take(s.locks, t.SampleID, func(l *recording.Lock) int64 { return l.SampleID }, snap.locks[:0])
		snap.edges = take(s.edges, t.SampleID, func(e *recording.Edge) int64 { return e.SampleID }, snap.edges[:0])
		snap.odoo = take(s.odoo, t.SampleID, func(o *recording.OdooModule) int64 { return o.SampleID }, snap.odoo[:0])
		snap.servers = take(s.servers, t.SampleID, func(v *recording.PgBouncerServer) int64 { return v.SampleID }, snap.servers[:0])
		snap.prepared = take(s.prepared, t.SampleID, func(p *recording.PreparedXact) int64 { return p.SampleID }, snap.prepared[:0])
		if (s.since != 0 && t.TS < s.since) || (s.until != 0 && t.TS > s.until) {
			continue
		}
		return true
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// costSum adds up the recorder's cost per sample.
type costSum struct {
	n, withServer      int64
	query, server, cpu int64
	maxQuery           int64
}

func (c *costSum) add(t *recording.Tick) {
	c.n++
	c.query += t.QueryMicros
	c.cpu += t.ClientMicros
	c.maxQuery = max(c.maxQuery, t.QueryMicros)
	if t.ServerMicros > 0 {
		c.withServer++
		c.server += t.ServerMicros
	}
}

func (c *costSum) result() RecorderCost {
	var r RecorderCost
	if c.n > 0 {
		r.MeanQueryMicros = round3(float64(c.query) / float64(c.n))
		r.MeanClientCPUMicros = round3(float64(c.cpu) / float64(c.n))
		r.MaxQueryMicros = c.maxQuery
	}
	if c.withServer > 0 {
		r.MeanServerCPUMicros = round3(float64(c.server) / float64(c.withServer))
	}
	return r
}
