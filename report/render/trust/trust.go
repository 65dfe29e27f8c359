// Package trust decides whether a file or directory may hold code a
// lockscope process runs: only when no user but the caller and root can
// have written it or replaced it.
package trust

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUntrusted is wrapped by the errors of Path and PrivateDir.
var ErrUntrusted = errors.New("writable by another user")

// Path checks path and every directory above it: each must be owned by
// root or the effective user and not writable by group or others — a
// directory may be when its sticky bit is set (as /tmp's is), since then
// others can neither rename nor remove what is in it. The last element is
// looked at with Lstat: a symbolic link there is refused.
func Path(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s: a symbolic link: %w", abs, ErrUntrusted)
	}
	if err := check(abs, fi, false); err != nil {
		return err
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if err := check(dir, fi, true); err != nil {
			return err
		}
		if parent := filepath.Dir(dir); parent == dir {
			return nil
		}
	}
}

func check(path string, fi fs.FileInfo, ancestor bool) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner to check: %w", path, ErrUntrusted)
	}
	if euid := uint32(os.Geteuid()); st.Uid != 0 && st.Uid != euid {
		return fmt.Errorf("%s: owned by uid %d, not by uid %d or root: %w", path, st.Uid, euid, ErrUntrusted)
	}
	if fi.Mode().Perm()&0o022 != 0 && !(ancestor && fi.Mode()&fs.ModeSticky != 0) {
		return fmt.Errorf("%s: mode %v lets group or others write it: %w", path, fi.Mode().Perm(), ErrUntrusted)
	}
	return nil
}

// PrivateDir creates dir (mode 0700, with any missing parents) unless it
// exists, and checks that it is a directory of the effective user's own —
// not root's on another user's behalf — that no one else can write, under
// directories that pass Path.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := Path(dir); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory: %w", dir, ErrUntrusted)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != uint32(os.Geteuid()) {
		return fmt.Errorf("%s: not owned by uid %d: %w", dir, os.Geteuid(), ErrUntrusted)
	}
	return nil
}

// CacheDir is the user's private lockscope cache, os.UserCacheDir()/lockscope
// ($XDG_CACHE_HOME or ~/.cache), created and checked with PrivateDir.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(base, "lockscope")
	if err := PrivateDir(dir); err != nil {
		return "", err
	}
	return dir, nil
}
