package analyze

import "github.com/lockscope/lockscope/capture/recording"

// oneLine is recording.OneLine: one line, cut at a character boundary.
func oneLine(s string, n int) string { return recording.OneLine(s, n) }
