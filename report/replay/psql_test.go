package replay

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// psql's aligned format, as psql 15 prints these results.
func TestWritePsql(t *testing.T) {
	tb := Table{Columns: []string{"pid", "query", "state"}, Right: []bool{true, false, false}}
	tb.add(str("7"), str("select 1,\n  2"), nil)
	tb.add(str("12345"), str("x"), str("idle"))
	var b strings.Builder
	if err := tb.WritePsql(&b); err != nil {
		t.Fatal(err)
	}
	want := `  pid  |   query   | state 
-------+-----------+-------
     7 | select 1,+| 
       |   2       | 
 12345 | x         | idle
(2 rows)

`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	one := Table{Columns: []string{"lock_waiters"}, Right: []bool{true}}
	one.add(str("0"))
	b.Reset()
	one.WritePsql(&b)
	if want := " lock_waiters \n--------------\n            0\n(1 row)\n\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// Recorded text cannot drive the terminal: escapes, tabs and bad bytes are
// shown as psql shows them.
func TestDisplayLines(t *testing.T) {
	got := displayLines("a\tb\x1b[31mred\r\xffz\nnext")
	want := []string{`a       b\x1B[31mred\r\xFFz`, "next"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestInterval(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		then time.Time
		want string
	}{
		{now.Add(-1500 * time.Millisecond), "00:00:01.5"},
		{now.Add(-95 * time.Second), "00:01:35"},
		{now.Add(-(26*time.Hour + 3*time.Minute + 123456*time.Microsecond)), "1 day 02:03:00.123456"},
		{now.Add(-50 * time.Hour), "2 days 02:00:00"},
		{now.Add(250 * time.Millisecond), "-00:00:00.25"},
	} {
		if got := *interval(now, c.then.UnixMicro()); got != c.want {
			t.Errorf("interval %v: got %q, want %q", now.Sub(c.then), got, c.want)
		}
	}
	if interval(now, 0) != nil {
		t.Error("a NULL start must give a NULL interval")
	}
}

func TestLeft(t *testing.T) {
	if got := *left("ünïcode", 3); got != "ünï" {
		t.Errorf("left counts characters: got %q", got)
	}
	if left("", 3) != nil {
		t.Error("left of NULL is NULL")
	}
}
