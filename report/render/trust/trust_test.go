package trust

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestPath(t *testing.T) {
	base := t.TempDir()
	mine := filepath.Join(base, "mine")
	os.WriteFile(mine, []byte("x"), 0o755)
	loose := filepath.Join(base, "loose")
	os.WriteFile(loose, []byte("x"), 0o755)
	os.Chmod(loose, 0o777)
	looseDir := filepath.Join(base, "loose-dir")
	os.Mkdir(looseDir, 0o700)
	os.Chmod(looseDir, 0o777)
	inLooseDir := filepath.Join(looseDir, "f")
	os.WriteFile(inLooseDir, []byte("x"), 0o700)
	sticky := filepath.Join(base, "sticky")
	os.Mkdir(sticky, 0o700)
	os.Chmod(sticky, 0o777|os.ModeSticky)
	inSticky := filepath.Join(sticky, "f")
	os.WriteFile(inSticky, []byte("x"), 0o700)
	link := filepath.Join(base, "link")
	os.Symlink(mine, link)
	cases := []struct {
		path string
		ok   bool
	}{
		{mine, true},
		{loose, false},
		{inLooseDir, false},
		{inSticky, true},
		{link, false},
	}
	for _, c := range cases {
		err := Path(c.path)
		if (err == nil) != c.ok {
			t.Errorf("Path(%s) = %v, want ok %v", filepath.Base(c.path), err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrUntrusted) {
			t.Errorf("Path(%s) = %v, want an error wrapping ErrUntrusted", filepath.Base(c.path), err)
		}
	}
	if os.Geteuid() == 0 {
		foreign := filepath.Join(base, "foreign")
		os.WriteFile(foreign, []byte("x"), 0o755)
		os.Chown(foreign, 65534, 65534)
		if err := Path(foreign); !errors.Is(err, ErrUntrusted) {
			t.Errorf("Path(a file of uid 65534) = %v, want ErrUntrusted", err)
		}
	}
}

func TestPrivateDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "a", "cache")
	if err := PrivateDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("created %v, %v; want mode 0700", fi.Mode(), err)
	}
	os.Chmod(dir, 0o777)
	if err := PrivateDir(dir); !errors.Is(err, ErrUntrusted) {
		t.Errorf("a directory anyone can write: %v, want ErrUntrusted", err)
	}
	if os.Geteuid() == 0 {
		os.Chmod(dir, 0o700)
		os.Chown(dir, 65534, 65534)
		if err := PrivateDir(dir); !errors.Is(err, ErrUntrusted) {
			t.Errorf("another user's directory: %v, want ErrUntrusted", err)
		}
	}
}
