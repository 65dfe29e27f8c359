package analyze

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// ddlIncident is an incident whose DDL waits for 2 s with two sessions
// queued behind it, then gets its lock while two other sessions still
// wait on something else for one more second.
func ddlIncident() (*Incident, *incState) {
	ddl := Backend{PID: 100, Start: 1}
	inc := &incState{
		roots: map[Backend]*rootState{},
		ddls:  map[Backend]*ddlState{ddl: {backend: ddl, mode: "AccessExclusiveLock", attempts: 1, behind: 2}},
		series: []point{
			{ts: 0, dt: 1, waiters: 3, behind: map[Backend]int{ddl: 2}},
			{ts: 1e6, dt: 1, waiters: 3, behind: map[Backend]int{ddl: 2}},
			{ts: 2e6, dt: 1, waiters: 2, behind: map[Backend]int{}},
		},
	}
	return &Incident{}, inc
}

func scenario(t *testing.T, ws []WhatIf, name string) WhatIf {
	t.Helper()
	for _, w := range ws {
		if w.Scenario == name {
			return w
		}
	}
	t.Fatalf("no what-if %q in %+v", name, ws)
	return WhatIf{}
}

// Without retry, the DDL that gave up is taken out of the queue only in
// the samples where it waited: once it holds its lock it is not a waiter.
func TestWhatIfLockTimeoutCountsOnlyWaitingDDL(t *testing.T) {
	ws := whatIf(ddlIncident())
	// 3 waiters in the first second; then the DDL and its two are gone
	// (0); the last second's two waiters on something else stay.
	if got := scenario(t, ws, "lock_timeout = 1s").WaiterSeconds; got != 5 {
		t.Errorf("lock_timeout = 1s: %v waiter-seconds, want 5", got)
	}
}

// A timeout longer than the whole wait never fires: the retry replay is
// what happened.
func TestWhatIfRetryLongerThanWaitEqualsActual(t *testing.T) {
	ws := whatIf(ddlIncident())
	actual := scenario(t, ws, "actual")
	got := scenario(t, ws, "lock_timeout = 5s, retry after 1s")
	if got.WaiterSeconds != actual.WaiterSeconds || got.PeakWaiters != actual.PeakWaiters || got.Duration != actual.Duration {
		t.Errorf("retry with a 5 s timeout on a 3 s incident: %+v, want the actual %+v", got, actual)
	}
	if actual.WaiterSeconds != 8 {
		t.Errorf("actual: %v waiter-seconds, want 8", actual.WaiterSeconds)
	}
}

// Two incidents merged into one keep one queue point per moment and
// relation, in time order: their waiters are distinct sessions and add up.
func TestMergeQueueSortedAndCombined(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(int64(s), 0).UTC() }
	mk := func(q ...QueuePoint) *incState {
		return &incState{relations: map[string]bool{}, roots: map[Backend]*rootState{},
			waiters: map[Backend]*waiterState{}, ddls: map[Backend]*ddlState{}, edgeKinds: map[string]int{},
			protected: map[Backend]*Protected{}, queue: q}
	}
	a := mk(QueuePoint{TS: at(1), Relation: "public.a", Depth: 1, Head: 10, Rate: 1},
		QueuePoint{TS: at(3), Relation: "public.a", Depth: 2, Head: 10, Rate: 0.5})
	b := mk(QueuePoint{TS: at(2), Relation: "public.a", Depth: 1, Head: 20, Rate: 1},
		QueuePoint{TS: at(3), Relation: "public.a", Depth: 1, Head: 20, Rate: 0},
		QueuePoint{TS: at(3), Relation: "public.b", Depth: 4, Head: 30, Rate: -1})
	a.merge(b)
	want := []struct {
		ts    int
		rel   string
		depth int
	}{{1, "public.a", 1}, {2, "public.a", 1}, {3, "public.a", 3}, {3, "public.b", 4}}
	if len(a.queue) != len(want) {
		t.Fatalf("merged queue %+v, want %d points", a.queue, len(want))
	}
	for i, w := range want {
		q := a.queue[i]
		if !q.TS.Equal(at(w.ts)) || q.Relation != w.rel || q.Depth != w.depth {
			t.Errorf("point %d: %v %s depth %d, want %v %s depth %d", i, q.TS, q.Relation, q.Depth, at(w.ts), w.rel, w.depth)
		}
	}
}

// round3 rounds half away from zero on both sides and never gives a
// negative zero (which JSON writes as "-0").
func TestRound3Negative(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{
		{-0.0026, -0.003}, {0.0026, 0.003}, {-1.2344, -1.234}, {-0.0004, 0}, {-0.0001, 0},
	} {
		got := round3(c.in)
		if got != c.want || math.Signbit(got) != math.Signbit(c.want) {
			t.Errorf("round3(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	b, err := json.Marshal(QueuePoint{Rate: round3(-0.0001)})
	if err != nil {
		t.Fatal(err)
	}
	if want := `"rate":0,`; !json.Valid(b) || !strings.Contains(string(b), want) {
		t.Errorf("a falling rate under a thousandth: %s, want %s", b, want)
	}
}

// A query cut for a runbook line or evidence never splits a character.
func TestOneLineKeepsCharacters(t *testing.T) {
	if got := oneLine("UPDATE res_partner SET name = 'Müller' WHERE id = 1", 33); !utf8.ValidString(got) {
		t.Errorf("oneLine cut a character in half: %q", got)
	}
}
