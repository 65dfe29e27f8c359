package capture

import (
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lockscope/lockscope/capture/recording"
)

// makeSegments seals one real segment per entry of waiters (a tick with
// that many lock waiters), an hour apart, ending at end.
func makeSegments(t *testing.T, dir string, end time.Time, waiters []int32) []recording.Segment {
	t.Helper()
	var segs []recording.Segment
	for i, w := range waiters {
		at := end.Add(-time.Duration(len(waiters)-1-i) * time.Hour)
		meta := recording.Meta{Segment: recording.NewSegmentID(at), Cluster: "c"}
		s := recording.Sample{
			Tick:     &recording.Tick{SampleID: int64(i + 1), TS: at.UnixMicro(), ClientTS: at.UnixMicro(), Kind: recording.TickFull, LockWaiters: w},
			Activity: []recording.Activity{{SampleID: int64(i + 1), TS: at.UnixMicro(), PID: 100, Query: "SELECT 1"}},
		}
		seg, err := recording.WriteSegment(dir, meta, &s)
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, seg)
	}
	return segs
}

func ids(segs []recording.Segment) []int64 {
	var out []int64
	for _, s := range segs {
		out = append(out, s.Meta.FirstSampleID)
	}
	return out
}

func TestRetention(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	// Segments 1..6, oldest first; 2 and 4 saw lock waits.
	waiters := []int32{0, 5, 0, 3, 0, 0}
	cases := []struct {
		name string
		cfg  func(size int64) Config
		want []int64
	}{
		{"within budget", func(size int64) Config { return Config{RetainBytes: 10 * size} }, []int64{1, 2, 3, 4, 5, 6}},
		{"size: quiet segments go first, oldest first", func(size int64) Config { return Config{RetainBytes: 4*size + size/2} }, []int64{2, 4, 5, 6}},
		{"size: then incidents, oldest first", func(size int64) Config { return Config{RetainBytes: 2*size + size/2} }, []int64{4, 6}},
		{"size: the newest segment stays", func(size int64) Config { return Config{RetainBytes: 1} }, []int64{6}},
		{"age: quiet past 150 min, incidents kept", func(int64) Config {
			return Config{RetainAge: 150 * time.Minute, RetainIncidentAge: 10 * time.Hour}
		}, []int64{2, 4, 5, 6}},
		{"age: incidents have their own limit", func(int64) Config {
			return Config{RetainAge: 150 * time.Minute, RetainIncidentAge: 3 * time.Hour}
		}, []int64{4, 5, 6}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			segs := makeSegments(t, dir, now, waiters)
			size := segs[0].Bytes
			kept := applyRetention(segs, c.cfg(size), now, slog.New(slog.DiscardHandler))
			if diff := cmp.Diff(c.want, ids(kept)); diff != "" {
				t.Errorf("kept segments (-want +got):\n%s", diff)
			}
			// What is kept is what is on disk.
			listed, err := recording.List(dir)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, ids(listed)); diff != "" {
				t.Errorf("segments on disk (-want +got):\n%s", diff)
			}
		})
	}
}
