// Command lockscope-render is lockscope's Graphviz renderer: it reads DOT
// graphs as JSON lines on stdin and answers each with its SVG on stdout.
// lockscope analyze and demo start it, from beside their own binary, when
// they write the post-mortem's pictures; it is not meant to be run by hand.
//
// It is a process of its own because go-graphviz compiles its WebAssembly
// in its package initialisation: linked into lockscope, every command
// would pay for it at start. The compiled code is cached in the user's
// private cache directory, or nowhere (see report/render/wasmcache).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/lockscope/lockscope/report/render"
	"github.com/lockscope/lockscope/report/render/graphviz"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := render.Serve(ctx, os.Stdin, os.Stdout, graphviz.SVG); err != nil {
		fmt.Fprintf(os.Stderr, "lockscope-render: %v\n", err)
		os.Exit(1)
	}
}
