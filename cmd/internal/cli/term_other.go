//go:build !linux

package cli

import "os"

// isTerminal is false off Linux: every SIGINT is forwarded.
func isTerminal(*os.File) bool { return false }

func foreground(*os.File) bool { return false }
