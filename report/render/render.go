// Package render turns DOT into SVG in a renderer process of its own,
// lockscope-render, installed beside the lockscope binary.
//
// Graphviz comes through go-graphviz, which compiles its WebAssembly in its
// package initialisation: any program that links it pays about a second
// and 70 MB at every start, and go-graphviz caches the compiled code in a
// directory of its choosing (see report/render/wasmcache). Keeping it out
// of the lockscope binary means capture, recover, replay, train and --help
// start without it, and only a command that writes pictures starts the
// renderer, once, for all its pictures.
//
// The renderer is looked for beside the running executable only (never in
// $PATH or the working directory), and run only when it and the
// directories above it pass trust.Path: no other user can have written it.
// Requests and answers are JSON lines on the renderer's stdin and stdout.
package render

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/lockscope/lockscope/report/render/trust"
)

// Binary is the renderer's file name.
const Binary = "lockscope-render"

// ErrNoRenderer is wrapped by the error of a Process that cannot find a
// renderer it may run.
var ErrNoRenderer = errors.New("no renderer")

type request struct {
	DOT string `json:"dot"`
}

type response struct {
	SVG   string `json:"svg,omitempty"`
	Error string `json:"error,omitempty"`
}

// maxLine bounds one request or answer (a DOT graph or its SVG).
const maxLine = 256 << 20

// Serve answers requests from in on out until in ends, rendering each
// with svg: the renderer process's main loop.
func Serve(ctx context.Context, in io.Reader, out io.Writer, svg func(context.Context, string) ([]byte, error)) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return err
		}
		var req request
		var resp response
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Error = "a request that is not JSON: " + err.Error()
		} else if b, err := svg(ctx, req.DOT); err != nil {
			resp.Error = err.Error()
		} else {
			resp.SVG = string(b)
		}
		if err := enc.Encode(resp); err != nil {
			return fmt.Errorf("answer: %w", err)
		}
	}
	return sc.Err()
}

// Process renders through a renderer process, started at the first SVG
// call and ended by Close. Its methods may be called from one goroutine
// at a time.
type Process struct {
	// Path is the renderer; empty means Locate's.
	Path string

	mu      sync.Mutex
	served  int  // graphs answered
	noCache bool // the renderer runs with LOCKSCOPE_RENDER_CACHE=off
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Scanner
	stderr  *tailBuffer
	err     error
}

// Locate returns the renderer beside the running executable, once it has
// checked that no other user can have written it.
func Locate() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoRenderer, err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoRenderer, err)
	}
	path := filepath.Join(filepath.Dir(exe), Binary)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%w: %s is not installed beside %s (make build puts both in bin/; go install …/cmd/lockscope-render)", ErrNoRenderer, Binary, exe)
	}
	if err := trust.Path(path); err != nil {
		return "", fmt.Errorf("%w: refusing to run %s: %v", ErrNoRenderer, path, err)
	}
	return path, nil
}

// SVG renders dot.
func (p *Process) SVG(ctx context.Context, dot string) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	svg, err := p.exchange(ctx, dot)
	if err != nil && p.served == 0 && !p.noCache && ctx.Err() == nil && !errors.Is(err, ErrNoRenderer) && p.cmd != nil {
		// A renderer that dies on its first graph may have met a
		// damaged compilation cache (torn by a crash or a full disk,
		// wazero panics loading it): once more without one.
		p.noCache, p.cmd, p.err = true, nil, nil
		svg, err = p.exchange(ctx, dot)
		if err == nil {
			dropCache()
		}
	}
	if err == nil {
		p.served++
	}
	return svg, err
}

func (p *Process) exchange(ctx context.Context, dot string) ([]byte, error) {
	if p.err != nil {
		return nil, p.err
	}
	if p.cmd == nil {
		if p.err = p.start(ctx); p.err != nil {
			return nil, p.err
		}
	}
	line, err := json.Marshal(request{DOT: dot})
	if err != nil {
		return nil, err
	}
	if _, err := p.in.Write(append(line, '\n')); err != nil {
		p.err = p.died(err)
		return nil, p.err
	}
	if !p.out.Scan() {
		err := p.out.Err()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		p.err = p.died(err)
		return nil, p.err
	}
	var resp response
	if err := json.Unmarshal(p.out.Bytes(), &resp); err != nil {
		p.err = fmt.Errorf("the renderer's answer: %w", err)
		return nil, p.err
	}
	if resp.Error != "" {
		p.served++ // the renderer works; this graph did not
		return nil, errors.New(resp.Error)
	}
	return []byte(resp.SVG), nil
}

func (p *Process) start(ctx context.Context) error {
	path := p.Path
	if path == "" {
		var err error
		if path, err = Locate(); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = childEnv()
	if p.noCache {
		cmd.Env = append(cmd.Env, "LOCKSCOPE_RENDER_CACHE=off")
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	p.stderr = &tailBuffer{max: 4096}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the renderer %s: %w", path, err)
	}
	p.cmd, p.in = cmd, in
	p.out = bufio.NewScanner(out)
	p.out.Buffer(make([]byte, 64<<10), maxLine)
	return nil
}

// died ends the renderer after a failed exchange and says why.
func (p *Process) died(err error) error {
	p.in.Close()
	werr := p.cmd.Wait()
	msg := strings.Join(strings.Fields(p.stderr.String()), " ")
	if msg != "" {
		return fmt.Errorf("the renderer %s stopped (%v): %s", p.cmd.Path, werr, msg)
	}
	return fmt.Errorf("the renderer %s stopped (%v): %w", p.cmd.Path, werr, err)
}

// Close ends the renderer, if it was started.
func (p *Process) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.ProcessState != nil {
		return nil
	}
	p.in.Close()
	if err := p.cmd.Wait(); err != nil && p.err == nil {
		return fmt.Errorf("the renderer: %w: %s", err, strings.TrimSpace(p.stderr.String()))
	}
	return nil
}

// dropCache removes go-graphviz's cache from the user's private cache
// directory after a renderer died with it and ran without it (a cache
// torn by a crash or a full disk makes wazero panic as it loads it): the
// next run compiles afresh and caches again. Only a directory that passes
// trust.CacheDir is touched.
func dropCache() {
	if dir, err := trust.CacheDir(); err == nil {
		os.RemoveAll(filepath.Join(dir, "go-graphviz"))
	}
}

// childEnv is this process's environment without the PG* variables (a
// password among them has no business in the renderer's environment).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.Write(p)
	if over := t.b.Len() - t.max; over > 0 {
		t.b.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.String()
}
