package analyze

import (
	"fmt"
	"sort"
	"time"
)

// The guardrails replayed by whatIf.
var (
	whatIfLockTimeouts  = []time.Duration{time.Second, 5 * time.Second}
	whatIfRetryPause    = time.Second
	whatIfIdleTimeouts  = []time.Duration{10 * time.Second, time.Minute}
	assumeQueueReplays  = "each new attempt's queue re-forms as the recorded one did from the DDL's first wait"
	assumeBehindDDLOnly = "only sessions queued behind the DDL are spared; sessions waiting on the root blocker directly wait as recorded"
	assumeGivesUp       = "the DDL gives up once its lock_timeout has passed since its first wait"
)

// whatIf replays the recorded incident under lock_timeout on its DDL (with
// and without retries) and under idle_in_transaction_session_timeout for
// an idle-in-transaction root blocker. The replays reuse the recorded
// samples: each sample stands for the time until the next one.
func whatIf(x *Incident, inc *incState) []WhatIf {
	out := []WhatIf{summarizeSeries("actual", inc.series, func(p point) int { return p.waiters }, "as recorded", nil)}
	if d := principalDDL(inc.ddls); d != nil && d.attempts > 0 {
		w0 := int64(0)
		for _, p := range inc.series {
			if _, ok := p.behind[d.backend]; ok {
				w0 = p.ts
				break
			}
		}
		var rootGone int64
		for _, r := range inc.roots {
			rootGone = max(rootGone, r.gone)
		}
		for _, l := range whatIfLockTimeouts {
			lu := l.Microseconds()
			out = append(out, summarizeSeries(fmt.Sprintf("lock_timeout = %s", l), inc.series, func(p point) int {
				behind, waiting := p.behind[d.backend]
				if p.ts >= w0+lu && waiting {
					return p.waiters - behind - 1
				}
				return p.waiters
			}, fmt.Sprintf("the %s would have failed after %s: the change is not applied and must be run again", d.mode, l),
				[]string{assumeGivesUp, assumeBehindDDLOnly, "sessions behind it get their locks at once"}))

			period := lu + whatIfRetryPause.Microseconds()
			out = append(out, summarizeSeries(fmt.Sprintf("lock_timeout = %s, retry after %s", l, whatIfRetryPause), inc.series, func(p point) int {
				if p.ts < w0 {
					return p.waiters
				}
				behindNow := p.behind[d.backend]
				others := p.waiters - behindNow
				if _, waiting := p.behind[d.backend]; waiting {
					others-- // the DDL itself
				}
				k := (p.ts - w0) / period
				if k == 0 && p.ts-w0 < lu {
					// The first attempt is the recorded wait until its
					// timeout fires; a timeout longer than the wait never does.
					return p.waiters
				}
				start := w0 + k*period
				if rootGone != 0 && start > rootGone {
					return max(others, 0) // the attempt after the blocker went away succeeds at once
				}
				if p.ts-start >= lu {
					return max(others, 0) // between attempts
				}
				// Within an attempt the queue re-forms as it did at first.
				return max(others, 0) + 1 + behindAt(inc.series, d.backend, w0+(p.ts-start))
			}, fmt.Sprintf("the %s waits at most %s at a time and retries until its blocker is gone, then succeeds", d.mode, l),
				[]string{assumeQueueReplays, assumeBehindDDLOnly, "the blocker goes away when it did"}))
		}
	}
	// idle_in_transaction_session_timeout ends an idle root blocker.
	for _, it := range whatIfIdleTimeouts {
		var cut int64
		all := len(inc.roots) > 0
		for _, r := range inc.roots {
			if r.idleSince == 0 {
				all = false
				break
			}
			cut = max(cut, r.idleSince+it.Microseconds())
		}
		if !all {
			break
		}
		drain := 0.0
		for _, rb := range x.RootBlockers {
			if rb.DrainSeconds != nil {
				drain = max(drain, *rb.DrainSeconds)
			}
		}
		out = append(out, summarizeSeries(fmt.Sprintf("idle_in_transaction_session_timeout = %s", it), inc.series, func(p point) int {
			if p.ts >= cut+int64(drain*1e6) {
				return 0
			}
			return p.waiters
		}, "the idle-in-transaction root blocker would have been ended "+it.String()+" after it went idle, rolling its transaction back",
			[]string{"the root blocker stays idle in transaction, as recorded", "the queue drains as fast as it did after the actual end"}))
	}
	return out
}

// behindAt is how many waited behind b at the last sample at or before ts
// (series is in time order: a binary search, as the retry replay asks once
// per sample).
func behindAt(series []point, b Backend, ts int64) int {
	i := sort.Search(len(series), func(i int) bool { return series[i].ts > ts })
	if i == 0 {
		return 0
	}
	return series[i-1].behind[b]
}

// summarizeSeries integrates a replayed count of waiters over the samples.
func summarizeSeries(name string, series []point, count func(point) int, effect string, assumptions []string) WhatIf {
	w := WhatIf{Scenario: name, Effect: effect, Assumptions: assumptions}
	if w.Assumptions == nil {
		w.Assumptions = []string{}
	}
	var first, last int64
	for _, p := range series {
		c := max(count(p), 0)
		w.PeakWaiters = max(w.PeakWaiters, c)
		w.WaiterSeconds += float64(c) * p.dt
		if c > 0 {
			if first == 0 {
				first = p.ts
			}
			last = p.ts + int64(p.dt*1e6)
		}
	}
	if first != 0 {
		w.Duration = round3(float64(last-first) / 1e6)
	}
	w.WaiterSeconds = round3(w.WaiterSeconds)
	return w
}
