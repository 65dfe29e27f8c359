package capture

import (
	"log/slog"
	"time"

	"github.com/lockscope/lockscope/capture/recording"
)

// applyRetention removes segments past the age and size budgets and returns
// the segments kept. Segments with lock waits (incidents) are kept in
// preference: past the size budget quiet segments go first, oldest first,
// and incident segments have an age limit of their own. The newest segment
// is never removed. segs must be ordered oldest first. A damaged segment
// counts like any other, by the times its name and files tell, as a quiet
// one (its lock waits cannot be read), and its removal says so.
func applyRetention(segs []recording.Segment, cfg Config, now time.Time, log *slog.Logger) []recording.Segment {
	if len(segs) <= 1 {
		return segs
	}
	remove := make([]bool, len(segs))
	var total int64
	for _, s := range segs {
		total += s.Bytes
	}
	last := len(segs) - 1
	for i, s := range segs[:last] {
		age := now.Sub(time.UnixMicro(s.Meta.EndUS))
		limit := cfg.RetainAge
		if s.Meta.LockWaitTicks > 0 {
			limit = cfg.RetainIncidentAge
		}
		if limit > 0 && age > limit {
			remove[i] = true
			total -= s.Bytes
		}
	}
	if cfg.RetainBytes > 0 {
		for _, incidents := range []bool{false, true} {
			for i, s := range segs[:last] {
				if total <= cfg.RetainBytes {
					break
				}
				if remove[i] || (s.Meta.LockWaitTicks > 0) != incidents {
					continue
				}
				remove[i] = true
				total -= s.Bytes
			}
		}
	}
	kept := segs[:0:0]
	for i, s := range segs {
		if !remove[i] {
			kept = append(kept, s)
			continue
		}
		if err := recording.Remove(s); err != nil {
			log.Warn("retention: remove segment", "segment", s.Meta.Segment, "err", err)
			kept = append(kept, s)
			continue
		}
		if s.Damage != nil {
			log.Info("retention: damaged segment removed", "segment", s.Meta.Segment, "bytes", s.Bytes,
				"file", s.Damage.File, "reason", s.Damage.Reason)
			continue
		}
		log.Info("retention: segment removed", "segment", s.Meta.Segment, "bytes", s.Bytes,
			"incident", s.Meta.LockWaitTicks > 0)
	}
	return kept
}
