package main_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lockscope/lockscope/capture/recording"
	"github.com/lockscope/lockscope/fixtures/pgtest"
	"github.com/lockscope/lockscope/fixtures/pgtest/pgserver"
)

// TestBinaryLinksNoRenderer: go-graphviz compiles its WebAssembly in its
// package initialisation, so the lockscope binary must not link it (nor
// wazero): only lockscope-render does.
func TestBinaryLinksNoRenderer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, forbidden := range []string{"github.com/goccy/go-graphviz", "github.com/tetratelabs/wazero", "lockscope/report/render/graphviz", "lockscope/report/render/wasmcache"} {
		if bytes.Contains(out, []byte(forbidden)) {
			t.Errorf("lockscope links %s", forbidden)
		}
	}
	out, err = exec.Command("go", "list", "-deps", "../lockscope-render").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("github.com/goccy/go-graphviz")) {
		t.Error("lockscope-render does not link go-graphviz")
	}
}

// user is who runs a command in these tests: root (nil credential) or
// the unprivileged user pgserver runs its servers as.
type user struct {
	name string
	cred *syscall.Credential
}

func (u user) uid() int {
	if u.cred == nil {
		return os.Geteuid()
	}
	return int(u.cred.Uid)
}

func (u user) gid() int {
	if u.cred == nil {
		return os.Getegid()
	}
	return int(u.cred.Gid)
}

// users returns root and the unprivileged user. A test run by another
// user than root has only itself.
func users() (self, other user) {
	self = user{name: "self"}
	if os.Geteuid() == 0 {
		self.name = "root"
	}
	other = user{name: "self again", cred: pgserver.Unprivileged()}
	if other.cred != nil {
		other.name = fmt.Sprintf("uid %d", other.cred.Uid)
	}
	return self, other
}

// dirFor makes a directory owned by u.
func dirFor(t *testing.T, u user, parent, name string, mode fs.FileMode) string {
	t.Helper()
	dir := filepath.Join(parent, name)
	if err := os.MkdirAll(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(dir, u.uid(), u.gid()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sharedTmp is a directory like /tmp: everyone writes, the sticky bit.
func sharedTmp(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("/tmp", "lockscope-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	dir := filepath.Join(base, "tmp")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return dir
}

// recordingFor copies a fixture's recording into dir, owned by u.
func recordingFor(t *testing.T, u user, dir string) string {
	t.Helper()
	src := filepath.Join("..", "..", "fixtures", "cron-vs-alter", "recording")
	dst := filepath.Join(dir, "recording")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			if err := os.MkdirAll(to, 0o700); err != nil {
				return err
			}
		} else {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := os.WriteFile(to, data, 0o600); err != nil {
				return err
			}
		}
		return os.Lchown(to, u.uid(), u.gid())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// runAs runs the lockscope binary (or, with strace set, the binary under
// strace writing its file system calls there) as u, with HOME and TMPDIR.
func runAs(t *testing.T, u user, home, tmp, straceLog string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	name, argv := bin(t), args
	if straceLog != "" {
		name, argv = "strace", append([]string{"-f", "-qq", "--seccomp-bpf", "-e", "trace=%file,%process", "-o", straceLog, bin(t)}, args...)
	}
	cmd := exec.Command(name, argv...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + tmp}
	cmd.Dir = home
	if u.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
	}
	return pgtest.RunCommand(t, cmd)
}

// checkSVG fails unless path is an SVG document.
func checkSVG(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName xml.Name
	}
	if err := xml.Unmarshal(data, &doc); err != nil || doc.XMLName.Local != "svg" {
		t.Errorf("%s is not SVG: %v", path, err)
	}
}

// TestUsersTakeTurns: root and then an unprivileged user, and the reverse,
// each run analyze (which renders) and capture with the same TMPDIR, as
// on a shared host. No run panics, every run renders its pictures, and
// nothing lands in the shared directory.
func TestUsersTakeTurns(t *testing.T) {
	pgtest.SkipIfShort(t)
	self, other := users()
	for _, order := range [][2]user{{self, other}, {other, self}} {
		t.Run(order[0].name+" then "+order[1].name, func(t *testing.T) {
			tmp := sharedTmp(t)
			base := filepath.Dir(tmp)
			for i, u := range order {
				home := dirFor(t, u, base, fmt.Sprintf("home%d", i), 0o755)
				rec := recordingFor(t, u, home)
				out := filepath.Join(home, "pm")
				_, stderr, code := runAs(t, u, home, tmp, "", "analyze", rec, "-o", out)
				if code != 0 || strings.Contains(stderr, "panic") {
					t.Fatalf("%s: analyze: exit %d:\n%s", u.name, code, stderr)
				}
				checkSVG(t, filepath.Join(out, "blocking-1.svg"))
				checkSVG(t, filepath.Join(out, "timeline-1.svg"))
				capOut := filepath.Join(home, "capture")
				_, stderr, code = runAs(t, u, home, tmp, "", "capture", "--dsn", srv.DSN("postgres"), "--out", capOut, "--duration", "1s")
				if code != 0 || strings.Contains(stderr, "panic") {
					t.Fatalf("%s: capture: exit %d:\n%s", u.name, code, stderr)
				}
				if segs, err := recording.List(capOut); err != nil || len(segs) == 0 {
					t.Errorf("%s: capture sealed no segment: %v", u.name, err)
				}
			}
			if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
				t.Errorf("the shared TMPDIR holds %v: lockscope left something where others write", entries)
			}
		})
	}
}

// TestPlantedCacheIsNeverUsed: another user has created go-graphviz's
// cache directory in the shared TMPDIR, and the runner's own
// ~/.cache/lockscope, with files in them. analyze renders, and the system
// calls of it and its renderer (strace -f) touch nothing inside either.
func TestPlantedCacheIsNeverUsed(t *testing.T) {
	pgtest.SkipIfShort(t)
	if _, err := exec.LookPath("strace"); err != nil {
		t.Fatal("strace is needed to see the system calls: make postgres installs it (apt-get install strace)")
	}
	self, other := users()
	for _, pair := range [][2]user{{self, other}, {other, self}} {
		runner, planter := pair[0], pair[1]
		t.Run("run by "+runner.name+", planted by "+planter.name, func(t *testing.T) {
			tmp := sharedTmp(t)
			base := filepath.Dir(tmp)
			home := dirFor(t, runner, base, "home", 0o755)
			dirFor(t, runner, home, ".cache", 0o700)
			var planted []string
			for _, dir := range []string{filepath.Join(tmp, "go-graphviz"), filepath.Join(home, ".cache", "lockscope")} {
				d := dirFor(t, planter, filepath.Dir(dir), filepath.Base(dir), 0o777)
				sub := dirFor(t, planter, d, "wazero-v1.10.1-amd64-linux", 0o777)
				for _, f := range []string{filepath.Join(sub, "0123456789abcdef"), filepath.Join(d, "go-graphviz", "planted")} {
					os.MkdirAll(filepath.Dir(f), 0o777)
					if err := os.WriteFile(f, []byte("planted code"), 0o666); err != nil {
						t.Fatal(err)
					}
					os.Lchown(f, planter.uid(), planter.gid())
				}
				planted = append(planted, d)
			}
			before := snapshot(t, planted)
			rec := recordingFor(t, runner, home)
			out := filepath.Join(home, "pm")
			log := filepath.Join(home, "strace.log")
			_, stderr, code := runAs(t, runner, home, tmp, log, "analyze", rec, "-o", out)
			if code != 0 || strings.Contains(stderr, "panic") {
				t.Fatalf("analyze: exit %d:\n%s", code, stderr)
			}
			checkSVG(t, filepath.Join(out, "blocking-1.svg"))
			calls, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(calls, []byte("lockscope-render")) {
				t.Fatalf("the renderer was not traced:\n%s", calls)
			}
			for _, line := range strings.Split(string(calls), "\n") {
				for _, d := range planted {
					if strings.Contains(line, d+"/") {
						t.Errorf("a system call inside the planted %s: %s", d, line)
					}
				}
			}
			if after := snapshot(t, planted); after != before {
				t.Errorf("the planted directories changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// snapshot lists the files under dirs with their sizes and times.
func snapshot(t *testing.T, dirs []string) string {
	t.Helper()
	var b strings.Builder
	for _, d := range dirs {
		filepath.WalkDir(d, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s %d %d; ", path, fi.Size(), fi.ModTime().UnixNano())
			return nil
		})
	}
	return b.String()
}
