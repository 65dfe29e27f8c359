package render

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// renderer builds lockscope-render into dir.
func renderer(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, Binary)
	if out, err := exec.Command("go", "build", "-o", path, "../../cmd/lockscope-render").CombinedOutput(); err != nil {
		t.Fatalf("build the renderer: %v\n%s", err, out)
	}
	return path
}

// rendererInEmptyHome builds the renderer and moves HOME to an empty
// directory, which it returns: the renderer's compilation cache starts
// empty there.
func rendererInEmptyHome(t *testing.T) (*Process, string) {
	t.Helper()
	// Built before HOME moves, which would move Go's build cache too.
	p := &Process{Path: renderer(t, t.TempDir())}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", "")
	return p, home
}

// The renderer process answers graph after graph, says what is wrong with
// a bad one and goes on, and ends on Close.
func TestProcess(t *testing.T) {
	p, home := rendererInEmptyHome(t)
	ctx := context.Background()
	for i := range 3 {
		svg, err := p.SVG(ctx, fmt.Sprintf("digraph { a%d -> b }", i))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(svg), "<svg") || !strings.Contains(string(svg), fmt.Sprintf("a%d", i)) {
			t.Errorf("graph %d: not the SVG of the graph:\n%s", i, svg)
		}
		if i == 1 {
			if _, err := p.SVG(ctx, "digraph { a -> "); err == nil || !strings.Contains(err.Error(), "parse DOT") {
				t.Errorf("a broken graph: %v, want a parse error", err)
			}
		}
	}
	pid := p.cmd.Process.Pid
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("the renderer %d still runs after Close", pid)
	}
	// Its compiled code went to the private cache, made 0700.
	fi, err := os.Stat(filepath.Join(home, ".cache", "lockscope"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the private cache: %v %v, want a 0700 directory", fi, err)
	}
}

// A renderer that another user could have written is not run.
func TestLocateRefusesLooseDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	os.Mkdir(dir, 0o700)
	path := renderer(t, dir)
	os.Chmod(dir, 0o777)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Locate looks beside the running executable: put a copy of this
	// test binary there and let it report.
	self := filepath.Join(dir, "locate.test")
	data, _ := os.ReadFile(exe)
	os.WriteFile(self, data, 0o755)
	out, err := exec.Command(self, "-test.run", "^TestLocateHelper$").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "refusing to run "+path) || !strings.Contains(string(out), "lets group or others write it") {
		t.Errorf("Locate in a directory anyone can write: %s", out)
	}
}

// TestLocateHelper prints what Locate says; it runs as a child of
// TestLocateRefusesLooseDirectory, from the directory under test.
func TestLocateHelper(t *testing.T) {
	if !strings.HasSuffix(os.Args[0], "locate.test") {
		return
	}
	_, err := Locate()
	fmt.Println("locate:", err)
	if err != nil && !errors.Is(err, ErrNoRenderer) {
		t.Errorf("the error does not wrap ErrNoRenderer: %v", err)
	}
}

// A compilation cache torn by a crash makes the renderer panic as it
// starts: the graph is rendered all the same, without the cache, and the
// torn cache is dropped so that the next run builds it afresh.
func TestTornCache(t *testing.T) {
	p, home := rendererInEmptyHome(t)
	ctx := context.Background()
	if _, err := p.SVG(ctx, "digraph { a -> b }"); err != nil {
		t.Fatal(err)
	}
	p.Close()
	cached, _ := filepath.Glob(filepath.Join(home, ".cache", "lockscope", "go-graphviz", "wazero-*", "*"))
	if len(cached) == 0 {
		t.Fatal("nothing was cached")
	}
	for _, f := range cached {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := 100; i < 400 && i < len(data); i++ {
			data[i] ^= 0xff
		}
		os.WriteFile(f, data, 0o600)
	}
	p = &Process{Path: p.Path}
	defer p.Close()
	svg, err := p.SVG(ctx, "digraph { c -> d }")
	if err != nil || !strings.Contains(string(svg), "<svg") {
		t.Fatalf("with a torn cache: %v", err)
	}
	if !p.noCache {
		t.Error("the renderer did not need the retry: the cache was not torn enough to test it")
	}
	if _, err := os.Stat(cached[0]); !os.IsNotExist(err) {
		t.Errorf("the torn cache %s is still there: %v", cached[0], err)
	}
}
