package main_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lockscope/lockscope/fixtures/pgtest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrape reads /metrics with Prometheus' own text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

func healthz(addr string) (int, string) {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// value returns the value of the family's metric with the given label
// (or its only metric when label is empty); -1 when absent.
func value(fams map[string]*dto.MetricFamily, name, label, labelValue string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	for _, m := range f.Metric {
		if label != "" {
			match := false
			for _, l := range m.Label {
				match = match || (l.GetName() == label && l.GetValue() == labelValue)
			}
			if !match {
				continue
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func TestMetricsAndHealthz(t *testing.T) {
	pgtest.SkipIfShort(t)
	// A server of its own: the test stops it.
	own, err := pgtest.Start(context.Background(), pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { own.Stop() })
	dsn := own.DSN("postgres")
	addr := freeAddr(t)
	out := filepath.Join(t.TempDir(), "rec")
	p := startRecorder(t, "", append(fastArgs(dsn, out), "--metrics-addr", addr, "--segment-duration", "1s")...)

	// Stage one lock waiter and watch the gauge see it.
	ctx := context.Background()
	holder := pgtest.Connect(t, dsn, "holder")
	if _, err := holder.Exec(ctx, "CREATE TABLE m (id int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, "BEGIN; LOCK TABLE m IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	waiter := startStmt(t, dsn, "waiter", "SELECT count(*) FROM m")
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := healthz(addr); code == http.StatusOK {
			fams = scrape(t, addr)
			if value(fams, "lockscope_lock_waiters", "", "") == 1 && value(fams, "lockscope_segments_sealed_total", "", "") >= 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed the lock waiter (%v) and a sealed segment (%v); stderr:\n%s",
				value(fams, "lockscope_lock_waiters", "", ""), value(fams, "lockscope_segments_sealed_total", "", ""), p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range []struct {
		name, label, value string
		min                float64
	}{
		{"lockscope_samples_total", "kind", "full", 1},
		{"lockscope_samples_total", "kind", "probe", 0},
		{"lockscope_sample_duration_seconds", "kind", "full", 1},
		{"lockscope_written_bytes_total", "", "", 1},
		{"lockscope_server_cpu_seconds_total", "", "", 1e-6}, // the server is on this host
		{"lockscope_segments_removed_total", "", "", 0},
		{"lockscope_gaps_total", "", "", 0},
		{"lockscope_reconnects_total", "", "", 0},
		{"lockscope_guard_cancels_total", "", "", 0},
		{"lockscope_last_sample_age_seconds", "", "", 0},
	} {
		if v := value(fams, c.name, c.label, c.value); v < c.min {
			t.Errorf("%s{%s=%q} = %v, want at least %v", c.name, c.label, c.value, v, c.min)
		}
	}
	if h := fams["lockscope_sample_duration_seconds"]; h == nil || h.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("lockscope_sample_duration_seconds is not a histogram: %v", h)
	}
	if age := value(fams, "lockscope_last_sample_age_seconds", "", ""); age > 1 {
		t.Errorf("last sample %v s old while recording every 50ms", age)
	}
	holder.Exec(ctx, "ROLLBACK")
	if err := <-waiter; err != nil {
		t.Fatalf("the lock waiter: %v", err)
	}

	// The server stops: the recorder keeps running, /healthz turns 503.
	if err := own.Stop(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, body := healthz(addr)
		if code == http.StatusServiceUnavailable {
			t.Logf("/healthz after the server stopped: %d %s", code, body)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz still %d (%s) 30s after the server stopped", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if age := value(scrape(t, addr), "lockscope_last_sample_age_seconds", "", ""); age < 5 {
		t.Errorf("last sample age %v s once /healthz is 503, want at least 5", age)
	}
	select {
	case err := <-p.done:
		t.Fatalf("the recorder exited when the server stopped: %v\n%s", err, p.stderr.String())
	default:
	}
}
