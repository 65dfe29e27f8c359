package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/lockscope/lockscope/analyze"
	"github.com/lockscope/lockscope/capture/recording"
)

// Options say what to replay.
type Options struct {
	Dirs    []string
	Cluster string
	// At is the moment to show (see ParseTime); with Step, the first.
	At string
	// Step, when set, walks from At to Until showing a moment every Step.
	Step time.Duration
	// Until ends a walk (default: the incident's end, or the recording's).
	Until string
	// Incident is the incident that relative times refer to (default 1).
	Incident int
	// Views are the views to show (default all).
	Views  []string
	Logger *slog.Logger
	// Strict makes a damaged segment an error instead of a warning.
	Strict bool
}

// Ref is what relative times refer to.
type Ref struct {
	Start, End time.Time // the recording's first and last samples
	Incident   *analyze.Incident
}

// needsAnalysis tells whether a time spec refers to an incident.
func needsAnalysis(spec string) bool {
	s := strings.ToLower(strings.TrimSpace(spec))
	return s == "" || s == "start" || s == "peak" || s == "end" || strings.HasPrefix(s, "t+") || strings.HasPrefix(s, "t-")
}

// ParseTime reads a moment of a recording: "start", "peak" or "end" of the
// incident (of the recording when it has none); "T+95s" or "T-5s" from the
// incident's start (Go durations; a bare number is seconds); an RFC 3339
// time; "2006-01-02 15:04:05[.000]" in UTC; or "15:04:05[.000]" (UTC) on
// the recording's first day.
func ParseTime(spec string, ref Ref) (time.Time, error) {
	s := strings.TrimSpace(spec)
	start, peak, end := ref.Start, ref.Start, ref.End
	if inc := ref.Incident; inc != nil {
		start, peak, end = inc.Start, inc.PeakAt, ref.End
		if inc.End != nil {
			end = *inc.End
		}
	}
	switch strings.ToLower(s) {
	case "", "start":
		return start, nil
	case "peak":
		return peak, nil
	case "end":
		return end, nil
	}
	if len(s) > 2 && (s[0] == 'T' || s[0] == 't') && (s[1] == '+' || s[1] == '-') {
		off := s[2:]
		d, err := time.ParseDuration(off)
		if err != nil {
			f, ferr := strconv.ParseFloat(off, 64)
			if ferr != nil {
				return time.Time{}, fmt.Errorf("time %q: want a duration after T%c, such as T+95s or T+1m30s", spec, s[1])
			}
			d = time.Duration(f * float64(time.Second))
		}
		if s[1] == '-' {
			d = -d
		}
		return start.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02 15:04:05.999999999", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("15:04:05.999999999", s); err == nil {
		y, m, d := ref.Start.UTC().Date()
		return time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC), nil
	}
	return time.Time{}, fmt.Errorf("time %q: want start, peak, end, T+95s, an RFC 3339 time or 15:04:05 (UTC)", spec)
}

// Run prints the views at the moments Options ask for.
func Run(ctx context.Context, w io.Writer, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, v := range o.Views {
		if _, ok := LookupView(v); !ok {
			return fmt.Errorf("no view %q: pick one of %s", v, strings.Join(ViewNames(), ", "))
		}
	}
	if o.Step < 0 {
		return errors.New("--step must be positive")
	}
	ref, err := reference(ctx, o)
	if err != nil {
		return err
	}
	at, err := ParseTime(o.At, ref)
	if err != nil {
		return err
	}
	until := at
	if o.Step > 0 {
		spec := o.Until
		if spec == "" {
			spec = "end"
		}
		if until, err = ParseTime(spec, ref); err != nil {
			return err
		}
		if until.Before(at) {
			return fmt.Errorf("the walk ends (%s) before it starts (%s)", until.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
		}
	}
	if at.Before(ref.Start) {
		return fmt.Errorf("%s is before the recording's first sample (%s UTC)", at.Format("2006-01-02 15:04:05.000"), ref.Start.Format("2006-01-02 15:04:05.000"))
	}
	if at.After(ref.End) {
		return fmt.Errorf("%s is after the recording's last sample (%s UTC)", at.Format("2006-01-02 15:04:05.000"), ref.End.Format("2006-01-02 15:04:05.000"))
	}
	shown := 0
	// The analysis behind a relative time has logged what the walk would
	// log again (damaged segments, an open journal).
	walkLog := o.Logger
	if needsAnalysis(o.At) || (o.Step > 0 && needsAnalysis(o.Until)) {
		walkLog = slog.New(slog.DiscardHandler)
	}
	err = Walk(ctx, analyze.Config{Dirs: o.Dirs, Cluster: o.Cluster, Logger: walkLog, Strict: o.Strict}, at, until, o.Step,
		func(target time.Time, f *analyze.Frame) error {
			if shown > 0 {
				if _, err := fmt.Fprintln(w); err != nil {
					return err
				}
			}
			shown++
			if err := header(w, target, f, ref); err != nil {
				return err
			}
			return Render(w, f, o.Views)
		})
	if err != nil {
		return err
	}
	if shown == 0 {
		return fmt.Errorf("no full sample in the hour up to %s UTC (a gap in the recording?): pick a later moment", at.Format("2006-01-02 15:04:05.000"))
	}
	return nil
}

// reference analyses the recording when the times refer to an incident,
// and reads its bounds otherwise.
func reference(ctx context.Context, o Options) (Ref, error) {
	if needsAnalysis(o.At) || (o.Step > 0 && needsAnalysis(o.Until)) {
		res, err := analyze.Run(ctx, analyze.Config{Dirs: o.Dirs, Cluster: o.Cluster, Logger: o.Logger, Strict: o.Strict})
		if err != nil {
			return Ref{}, err
		}
		ref := Ref{Start: res.Recording.Start, End: res.Recording.End}
		n := max(o.Incident, 1)
		if n > len(res.Incidents) {
			if o.Incident > 0 || len(res.Incidents) > 0 {
				return Ref{}, fmt.Errorf("the recording has %d incident(s), not %d: see lockscope analyze", len(res.Incidents), n)
			}
			return ref, nil // no incident: relative to the recording
		}
		ref.Incident = &res.Incidents[n-1]
		return ref, nil
	}
	var ref Ref
	for _, dir := range o.Dirs {
		segs, err := recording.Scan(dir)
		if err != nil {
			return Ref{}, err
		}
		for _, s := range segs {
			if s.Damage != nil || (o.Cluster != "" && s.Meta.Cluster != o.Cluster) {
				continue
			}
			st, en := time.UnixMicro(s.Meta.StartUS).UTC(), time.UnixMicro(s.Meta.EndUS).UTC()
			if ref.Start.IsZero() || st.Before(ref.Start) {
				ref.Start = st
			}
			if en.After(ref.End) {
				ref.End = en
			}
		}
	}
	if ref.Start.IsZero() {
		return Ref{}, fmt.Errorf("replay %v: %w", o.Dirs, analyze.ErrEmpty)
	}
	return ref, nil
}

// Walk calls fn for each moment from at to until, every step (once when
// step is 0), with the last full sample at or before that moment — what
// an operator running the runbook's queries then would have seen most
// recently. Moments before the first sample are skipped.
func Walk(ctx context.Context, cfg analyze.Config, at, until time.Time, step time.Duration, fn func(time.Time, *analyze.Frame) error) error {
	// The sample before at may be a baseline interval, or a gap, earlier:
	// look back up to an hour.
	cfg.Since, cfg.Until = at.Add(-time.Hour), until.Add(time.Minute)
	target := at
	var last *analyze.Frame
	done := false
	advance := func() {
		target = target.Add(step)
		done = step <= 0 || target.After(until)
	}
	emit := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(target, last); err != nil {
			return err
		}
		advance()
		return nil
	}
	err := analyze.Frames(ctx, cfg, func(f *analyze.Frame) error {
		for !done && f.TS.After(target) {
			if last == nil {
				advance() // no sample before this moment
				continue
			}
			if err := emit(); err != nil {
				return err
			}
		}
		if done {
			return analyze.ErrStopFrames
		}
		last = cloneFrame(last, f)
		return nil
	})
	if err != nil {
		return err
	}
	// The recording ended: the remaining moments see its last sample.
	for !done && last != nil {
		if err := emit(); err != nil {
			return err
		}
	}
	return nil
}

// cloneFrame copies f into dst (reusing dst's slices): Frames reuses f.
func cloneFrame(dst, f *analyze.Frame) *analyze.Frame {
	if dst == nil {
		dst = &analyze.Frame{}
	}
	*dst = analyze.Frame{TS: f.TS, SampleID: f.SampleID, Database: f.Database, Relations: f.Relations,
		Activity: append(dst.Activity[:0], f.Activity...), Locks: append(dst.Locks[:0], f.Locks...),
		Edges: append(dst.Edges[:0], f.Edges...), Modules: append(dst.Modules[:0], f.Modules...),
		ModulesAt: f.ModulesAt, ModulesPolled: f.ModulesPolled}
	return dst
}

// header says which moment and which sample a block of views shows.
func header(w io.Writer, target time.Time, f *analyze.Frame, ref Ref) error {
	parts := []string{target.UTC().Format("2006-01-02 15:04:05.000") + " UTC"}
	if inc := ref.Incident; inc != nil {
		parts = append(parts, fmt.Sprintf("T%s of incident %d", signedSeconds(target.Sub(inc.Start)), inc.ID))
	}
	lag := target.Sub(f.TS)
	sample := fmt.Sprintf("sample %d at %s", f.SampleID, f.TS.Format("15:04:05.000"))
	if lag >= 50*time.Millisecond {
		sample += fmt.Sprintf(", %.1f s before", lag.Seconds())
	}
	parts = append(parts, sample, "database "+f.Database)
	line := "== " + strings.Join(parts, " · ") + " ==\n"
	if lag > 10*time.Second {
		line += fmt.Sprintf("-- no sample in the %.0f s before this moment (the recorder was not sampling): this is older state\n", lag.Seconds())
	}
	_, err := io.WriteString(w, line)
	return err
}

func signedSeconds(d time.Duration) string {
	s := strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	if d >= 0 {
		return "+" + s
	}
	return s // the minus sign is the number's
}
