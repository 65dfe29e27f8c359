package recording_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lockscope/lockscope/capture/recording"
)

func TestOneLine(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"SELECT 1\n  FROM t\twhere x", 0, "SELECT 1 FROM t where x"},
		{"UPDATE stock_move SET x = 1", 6, "UPDATE…"},
		{"short", 10, "short"},
		{"SELECT 'héé'", 9, "SELECT 'h…"},  // é is two bytes: no half of it
		{"SELECT 'héé'", 10, "SELECT 'h…"}, // 10 cuts inside the first é
		{"SELECT 'héé'", 11, "SELECT 'hé…"},
		{"日本語のクエリ", 4, "日…"},
	} {
		got := recording.OneLine(c.in, c.n)
		if got != c.want || !utf8.ValidString(got) || strings.ContainsAny(got, "\n\t") {
			t.Errorf("OneLine(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
