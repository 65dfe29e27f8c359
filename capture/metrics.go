package capture

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lockscope/lockscope/capture/recording"
)

// Metrics are the recorder's Prometheus metrics and its health, served by
// Handler. A nil *Metrics records nothing.
type Metrics struct {
	reg            *prometheus.Registry
	lockWaiters    prometheus.Gauge
	samples        *prometheus.CounterVec
	sampleDuration *prometheus.HistogramVec
	serverCPU      prometheus.Counter
	written        prometheus.Counter
	sealed         prometheus.Counter
	removed        prometheus.Counter
	gaps           prometheus.Counter
	reconnects     prometheus.Counter
	guardCancels   prometheus.Counter

	started    time.Time
	lastSample atomic.Int64 // unix nanoseconds of the last sample written, 0 before the first
	maxAge     atomic.Int64 // nanoseconds: older than this, /healthz says 503
}

// NewMetrics registers the recorder's metrics, with the Go runtime's and
// the process's, in a registry of their own.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), started: time.Now()}
	m.maxAge.Store(int64(HealthMaxAge(DefaultConfig())))
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.lockWaiters = prometheus.NewGauge(prometheus.GaugeOpts{Name: "lockscope_lock_waiters",
		Help: "Backends waiting on a heavyweight lock at the last sample."})
	m.samples = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lockscope_samples_total",
		Help: "Samples written, by kind: probe (lock-waiter count) or full (pg_stat_activity, pg_locks, pg_blocking_pids)."}, []string{"kind"})
	m.sampleDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lockscope_sample_duration_seconds",
		Help:    "Round trip of a sample's queries, by kind.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"kind"})
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m.serverCPU = counter("lockscope_server_cpu_seconds_total",
		"CPU time the recorder's own backend spent on samples (only when the server runs on the recorder's host).")
	m.written = counter("lockscope_written_bytes_total", "Bytes appended to the recording's journals.")
	m.sealed = counter("lockscope_segments_sealed_total", "Segments sealed into Parquet.")
	m.removed = counter("lockscope_segments_removed_total", "Segments removed by retention.")
	m.gaps = counter("lockscope_gaps_total",
		"Gaps in the recording: stretches with no samples while the server was unreachable.")
	m.reconnects = counter("lockscope_reconnects_total",
		"Reconnections to the server after a lost connection.")
	m.guardCancels = counter("lockscope_guard_cancels_total",
		"Lock waiters the guard cancelled with pg_cancel_backend.")
	for _, c := range []prometheus.Collector{m.lockWaiters, m.samples, m.sampleDuration, m.serverCPU, m.written,
		m.sealed, m.removed, m.gaps, m.reconnects, m.guardCancels} {
		f(c)
	}
	for _, kind := range []string{recording.TickProbe, recording.TickFull} {
		m.samples.WithLabelValues(kind)
		m.sampleDuration.WithLabelValues(kind)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lockscope_last_sample_age_seconds",
		Help: "Seconds since the last sample was written (since the start before the first)."},
		func() float64 { return m.age(time.Now()).Seconds() }))
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// HealthMaxAge is how old the last sample may be before /healthz reports
// 503: three probe intervals, and at least 5 seconds.
func HealthMaxAge(cfg Config) time.Duration {
	return max(3*cfg.ProbeInterval, 5*time.Second)
}

func (m *Metrics) age(now time.Time) time.Duration {
	last := m.lastSample.Load()
	if last == 0 {
		return now.Sub(m.started)
	}
	return now.Sub(time.Unix(0, last))
}

// Handler serves /metrics (the Prometheus text format) and /healthz (200
// while the last sample is fresh, 503 otherwise).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		age, limit := m.age(time.Now()), time.Duration(m.maxAge.Load())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if m.lastSample.Load() == 0 || age > limit {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "stale: last sample %.1f s ago (limit %.1f s)\n", age.Seconds(), limit.Seconds())
			return
		}
		fmt.Fprintf(w, "ok: last sample %.1f s ago\n", age.Seconds())
	})
	return mux
}

func (m *Metrics) setMaxAge(d time.Duration) {
	if m != nil {
		m.maxAge.Store(int64(d))
	}
}

func (m *Metrics) tick(t *recording.Tick, bytes int, at time.Time) {
	if m == nil {
		return
	}
	m.lastSample.Store(at.UnixNano())
	m.lockWaiters.Set(float64(t.LockWaiters))
	m.samples.WithLabelValues(t.Kind).Inc()
	m.sampleDuration.WithLabelValues(t.Kind).Observe(float64(t.QueryMicros) / 1e6)
	if t.ServerMicros > 0 {
		m.serverCPU.Add(float64(t.ServerMicros) / 1e6)
	}
	m.written.Add(float64(bytes))
}

func (m *Metrics) wrote(bytes int) {
	if m != nil {
		m.written.Add(float64(bytes))
	}
}

func (m *Metrics) segments(sealed, removed int) {
	if m != nil {
		m.sealed.Add(float64(sealed))
		m.removed.Add(float64(removed))
	}
}

func (m *Metrics) reconnected() {
	if m != nil {
		m.reconnects.Inc()
		m.gaps.Inc()
	}
}

func (m *Metrics) guardCancel() {
	if m != nil {
		m.guardCancels.Inc()
	}
}
