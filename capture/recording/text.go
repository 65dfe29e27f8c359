package recording

import (
	"strings"
	"unicode/utf8"
)

// OneLine folds the white space of s (newlines included) into single
// spaces, for a log line or a summary, and cuts it to at most n bytes at a
// character boundary, marking the cut with "…"; n <= 0 does not cut.
func OneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if n <= 0 || len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
