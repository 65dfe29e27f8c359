// Package graphviz renders DOT to SVG in this process with go-graphviz
// (Graphviz compiled to WebAssembly: no system graphviz needed).
//
// Linking this package costs every start of the program a WebAssembly
// compile (about a second and 70 MB without a cache): go-graphviz does it
// in its package initialisation. Only the renderer process
// (cmd/lockscope-render) and tests link it; the lockscope binary talks to
// the renderer through report/render. The wasmcache import sets where the
// compiled code is cached before go-graphviz initialises.
package graphviz

import (
	"bytes"
	"context"
	"fmt"

	gographviz "github.com/goccy/go-graphviz"

	_ "github.com/lockscope/lockscope/report/render/wasmcache" // before go-graphviz's init
)

// SVG renders dot.
func SVG(ctx context.Context, dot string) ([]byte, error) {
	g, err := gographviz.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("start graphviz: %w", err)
	}
	defer g.Close()
	graph, err := gographviz.ParseBytes([]byte(dot))
	if err != nil {
		return nil, fmt.Errorf("parse DOT: %w", err)
	}
	defer graph.Close()
	if graph.GetStr("layout") == string(gographviz.NEATO) {
		g.SetLayout(gographviz.NEATO) // pinned positions: the timeline's time axis
	}
	var buf bytes.Buffer
	if err := g.Render(ctx, graph, gographviz.SVG, &buf); err != nil {
		return nil, fmt.Errorf("render SVG: %w", err)
	}
	return buf.Bytes(), nil
}

// InProcess renders in this process (for tests and tools that link
// go-graphviz anyway).
type InProcess struct{}

// SVG renders dot.
func (InProcess) SVG(ctx context.Context, dot string) ([]byte, error) { return SVG(ctx, dot) }
