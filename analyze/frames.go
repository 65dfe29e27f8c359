package analyze

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/lockscope/lockscope/capture/recording"
)

// Frame is one full sample of a recording as the server's views showed it
// at that moment: what pg_stat_activity, pg_locks and pg_blocking_pids
// returned to the recorder. The recorder's own session is left out, as it
// is from the analysis.
type Frame struct {
	TS       time.Time
	SampleID int64
	// Database is the database the recorder was connected to: the
	// runbook's current_database().
	Database string
	Activity []recording.Activity
	Locks    []recording.Lock
	Edges    []recording.Edge
	// Relations names the relation oids of the recording (pg_class's
	// relname, without the schema).
	Relations map[int64]string
	// Modules are the Odoo modules pending install, upgrade or removal at
	// the latest poll at or before TS (ModulesAt); ModulesPolled is false
	// when the recording's database has no ir_module_module.
	Modules       []recording.OdooModule
	ModulesAt     time.Time
	ModulesPolled bool
	// Prepared are the prepared transactions (pg_prepared_xacts): they
	// hold their locks with no backend (pid NULL in pg_locks, 0 in
	// pg_blocking_pids).
	Prepared []recording.PreparedXact
}

// Frames calls fn with each full sample of the recording in order, within
// cfg.Since and cfg.Until. fn's Frame and its slices are reused between
// calls. fn returning an error stops the walk and Frames returns it, except
// ErrStopFrames, which just stops it.
func Frames(ctx context.Context, cfg Config, fn func(*Frame) error) error {
	if cfg.Allocator == nil {
		cfg.Allocator = memory.NewGoAllocator()
	}
	segs, _, err := segments(cfg)
	if err != nil {
		return err
	}
	// Module polls are sparse: a frame shows the latest one, which may lie
	// before Since.
	since := cfg.Since
	st := &stream{ctx: ctx, mem: cfg.Allocator, segs: segs}
	if !cfg.Until.IsZero() {
		st.until = cfg.Until.UnixMicro()
	}
	defer st.close()
	f := &Frame{Relations: map[int64]string{}}
	var odooInterval int64
	for _, s := range segs {
		odooInterval = max(odooInterval, s.Meta.OdooIntervalMS*1000)
		if err := readAll(ctx, cfg.Allocator, s.Files[recording.TableRelations], convRelation, func(r *recording.Relation) {
			f.Relations[r.Relation] = r.Name
		}); err != nil {
			return err
		}
		f.Database = s.Meta.Database
		f.ModulesPolled = f.ModulesPolled || s.Meta.Odoo
	}
	var snap snapshot
	var polled []recording.OdooModule
	var polledAt int64
	for st.next(&snap) {
		// A poll that finds nothing pending writes no rows: modules not
		// seen for two poll intervals are done.
		if len(snap.odoo) > 0 {
			polled, polledAt = append(polled[:0], snap.odoo...), snap.tick.TS
		}
		if snap.tick.Kind != recording.TickFull || (!since.IsZero() && snap.tick.TS < since.UnixMicro()) {
			continue
		}
		f.TS, f.SampleID = time.UnixMicro(snap.tick.TS).UTC(), snap.tick.SampleID
		f.Modules, f.ModulesAt = f.Modules[:0], time.Time{}
		if polledAt != 0 && snap.tick.TS-polledAt <= 2*max(odooInterval, 1e6) {
			f.Modules, f.ModulesAt = append(f.Modules, polled...), time.UnixMicro(polledAt).UTC()
		}
		recorder := func(pid int32, app string) bool {
			return pid == snap.tick.CapturePID || (snap.recorderApp != "" && app == snap.recorderApp)
		}
		f.Activity = f.Activity[:0]
		skip := map[int32]bool{}
		for _, a := range snap.activity {
			if recorder(a.PID, a.ApplicationName) {
				skip[a.PID] = true
				continue
			}
			f.Activity = append(f.Activity, a)
		}
		f.Locks = slices.AppendSeq(f.Locks[:0], func(yield func(recording.Lock) bool) {
			for _, l := range snap.locks {
				if !skip[l.PID] && !yield(l) {
					return
				}
			}
		})
		f.Edges = slices.AppendSeq(f.Edges[:0], func(yield func(recording.Edge) bool) {
			for _, e := range snap.edges {
				if !skip[e.PID] && !yield(e) {
					return
				}
			}
		})
		f.Prepared = append(f.Prepared[:0], snap.prepared...)
		if err := fn(f); err != nil {
			if errors.Is(err, ErrStopFrames) {
				return nil
			}
			return err
		}
	}
	return st.err
}

// ErrStopFrames, returned by Frames' fn, ends the walk early.
var ErrStopFrames = errors.New("stop frames")
