package capture

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"time"

	"github.com/lockscope/lockscope/capture/recording"
)

// ApplicationName is the recorder's own application_name, so that analysis
// can leave its session out.
const ApplicationName = "lockscope-capture"

// Config is everything capture.Run needs. Zero values take the defaults of
// DefaultConfig.
type Config struct {
	// DSN is a libpq connection string or URL. Empty: the PG* environment
	// variables and ~/.pgpass, as libpq does.
	DSN string
	// PgBouncerDSN, when set, is a PgBouncer admin console to sample with
	// SHOW POOLS and SHOW SERVERS on every full sample.
	PgBouncerDSN string
	// Out is the recording directory.
	Out string
	// Cluster names the cluster in the recording's partitions
	// (cluster=NAME); default: the server's system identifier.
	Cluster string

	// ProbeInterval is the period of the cheap lock-waiter count.
	ProbeInterval time.Duration
	// FullInterval is the period of full snapshots while nothing waits.
	FullInterval time.Duration
	// BurstInterval is the period of full snapshots while backends wait on
	// locks, and for BurstHold after the last waiter is gone.
	BurstInterval time.Duration
	BurstHold     time.Duration
	// BurstThreshold is how many lock waiters switch to the burst rate.
	BurstThreshold int
	// OdooInterval is the period of the ir_module_module poll (when the
	// database has that table).
	OdooInterval time.Duration
	// QueryMax caps the bytes of query text kept per backend.
	QueryMax int

	// SegmentDuration and SegmentBytes rotate the open segment.
	SegmentDuration time.Duration
	SegmentBytes    int64
	// RetainBytes bounds the recording's size on disk; 0 keeps everything.
	RetainBytes int64
	// RetainAge removes quiet segments older than this; 0 keeps them.
	RetainAge time.Duration
	// RetainIncidentAge removes segments with lock waits older than this;
	// 0 keeps them.
	RetainIncidentAge time.Duration
	// SyncInterval is how often the journal is fsynced (a killed process
	// loses nothing that was written; a crashed host loses at most this).
	SyncInterval time.Duration

	// StatementTimeout and LockTimeout guard the recorder's own session.
	StatementTimeout time.Duration
	LockTimeout      time.Duration
	// ReconnectMax caps the backoff between reconnection attempts.
	ReconnectMax time.Duration
	// Duration stops the capture by itself after this long; 0 runs until
	// the context is cancelled.
	Duration time.Duration

	// GuardWait arms the guard when positive: a session that has waited
	// longer than this for a Share-or-stronger lock on a relation, with at
	// least GuardQueue sessions queued behind it, is cancelled with
	// pg_cancel_backend. GuardApplication (a glob, as in path.Match)
	// restricts it to matching application_names. The role needs
	// pg_signal_backend (see checkGuardPrivilege).
	GuardWait        time.Duration
	GuardQueue       int
	GuardApplication string

	// Events are recorded as they arrive (a wrapped command's start and
	// end); their messages go through the recorder's password redaction.
	// Events still queued when the capture stops are recorded too.
	Events <-chan recording.Event
	// Metrics, when set, is kept up to date with every sample.
	Metrics *Metrics
	// Window, when set, collects what the samples showed, for a summary.
	Window *Window

	Logger *slog.Logger
	// OnTick, when set, is called with each sample's tick once it is in
	// the journal: for progress displays, and for tests that wait for the
	// recorder to have seen something.
	OnTick func(recording.Tick)
}

// DefaultConfig returns the defaults: cheap enough to leave running during
// every deploy (see the README for their measured cost).
func DefaultConfig() Config {
	return Config{
		ProbeInterval:     250 * time.Millisecond,
		FullInterval:      5 * time.Second,
		BurstInterval:     250 * time.Millisecond,
		BurstHold:         5 * time.Second,
		BurstThreshold:    1,
		OdooInterval:      5 * time.Second,
		QueryMax:          1024,
		SegmentDuration:   10 * time.Minute,
		SegmentBytes:      64 << 20,
		RetainBytes:       2 << 30,
		RetainAge:         7 * 24 * time.Hour,
		RetainIncidentAge: 90 * 24 * time.Hour,
		SyncInterval:      time.Second,
		StatementTimeout:  2 * time.Second,
		LockTimeout:       100 * time.Millisecond,
		ReconnectMax:      10 * time.Second,
		GuardQueue:        5,
	}
}

// withDefaults fills zero fields from DefaultConfig and checks the rest.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.ProbeInterval, d.ProbeInterval)
	setDur(&c.FullInterval, d.FullInterval)
	setDur(&c.BurstInterval, d.BurstInterval)
	setDur(&c.BurstHold, d.BurstHold)
	setDur(&c.OdooInterval, d.OdooInterval)
	setDur(&c.SegmentDuration, d.SegmentDuration)
	setDur(&c.SyncInterval, d.SyncInterval)
	setDur(&c.StatementTimeout, d.StatementTimeout)
	setDur(&c.LockTimeout, d.LockTimeout)
	setDur(&c.ReconnectMax, d.ReconnectMax)
	if c.BurstThreshold == 0 {
		c.BurstThreshold = d.BurstThreshold
	}
	if c.QueryMax == 0 {
		c.QueryMax = d.QueryMax
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = d.SegmentBytes
	}
	if c.GuardQueue == 0 {
		c.GuardQueue = d.GuardQueue
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if c.Out == "" {
		errs = append(errs, errors.New("no output directory (--out)"))
	}
	for _, p := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"probe interval", c.ProbeInterval, 10 * time.Millisecond},
		{"full interval", c.FullInterval, 10 * time.Millisecond},
		{"burst interval", c.BurstInterval, 10 * time.Millisecond},
		{"segment duration", c.SegmentDuration, time.Second},
	} {
		if p.v < p.min {
			errs = append(errs, fmt.Errorf("%s %v is below the minimum of %v", p.name, p.v, p.min))
		}
	}
	if c.QueryMax < 16 {
		errs = append(errs, fmt.Errorf("query max %d bytes is below the minimum of 16", c.QueryMax))
	}
	if c.BurstThreshold < 1 {
		errs = append(errs, fmt.Errorf("burst threshold %d must be at least 1", c.BurstThreshold))
	}
	if c.Duration < 0 || c.RetainBytes < 0 || c.RetainAge < 0 || c.RetainIncidentAge < 0 {
		errs = append(errs, errors.New("durations and sizes must not be negative"))
	}
	if c.GuardWait < 0 {
		errs = append(errs, fmt.Errorf("guard wait %v must not be negative", c.GuardWait))
	}
	if c.GuardQueue < 1 {
		errs = append(errs, fmt.Errorf("guard queue %d must be at least 1", c.GuardQueue))
	}
	if _, err := path.Match(c.GuardApplication, ""); err != nil {
		errs = append(errs, fmt.Errorf("guard application pattern %q: %w", c.GuardApplication, err))
	}
	return c, errors.Join(errs...)
}
