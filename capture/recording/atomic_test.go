package recording_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/lockscope/lockscope/capture/recording"
)

// A write that fails leaves the old file whole and no temporary file; one
// that succeeds replaces it, 0600.
func TestWriteAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "incident.json")
	if err := recording.WriteFileAtomic(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := recording.WriteAtomic(path, func(w io.Writer) error {
		w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failed write: %v, want it to wrap the writer's error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("after a failed write the file holds %q, want the old content", b)
	}
	if err := recording.WriteFileAtomic(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if b, _ := os.ReadFile(path); err != nil || string(b) != "new" || st.Mode().Perm() != 0o600 {
		t.Errorf("after a write: %q, mode %v, err %v; want \"new\", 0600", b, st.Mode().Perm(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*.tmp")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
