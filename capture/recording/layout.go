package recording

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// File and directory modes. Recordings hold query text: only the owner may
// read them.
const (
	FileMode os.FileMode = 0o600
	DirMode  os.FileMode = 0o700
)

const (
	journalDir    = "journal"
	journalSuffix = ".wal"
	segmentSuffix = ".parquet"
	tmpSuffix     = ".tmp"
	// segmentTimeLayout names a segment after its first sample. It sorts
	// chronologically and is unique per recording directory (one recorder
	// at a time holds the directory's lock).
	segmentTimeLayout = "20060102T150405.000000Z"
)

var (
	segmentIDPattern = regexp.MustCompile(`^\d{8}T\d{6}\.\d{6}Z$`)
	clusterPattern   = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)
)

// NewSegmentID returns the id of a segment starting at t.
func NewSegmentID(t time.Time) string {
	return t.UTC().Format(segmentTimeLayout)
}

// ValidSegmentID reports whether id has the form NewSegmentID produces.
func ValidSegmentID(id string) bool { return segmentIDPattern.MatchString(id) }

// segmentTime parses a segment id back into its start time.
func segmentTime(id string) (time.Time, error) {
	return time.Parse(segmentTimeLayout, id)
}

// SanitizeCluster turns a name into a value safe for a Hive partition
// directory (cluster=VALUE).
func SanitizeCluster(name string) string {
	s := clusterPattern.ReplaceAllString(name, "_")
	s = strings.Trim(s, "._")
	if s == "" {
		return "unknown"
	}
	return s
}

// TablePath is where table's file of a segment lives in a recording.
func TablePath(dir, table, cluster, segment string) (string, error) {
	t, err := segmentTime(segment)
	if err != nil {
		return "", fmt.Errorf("segment id %q: %w", segment, err)
	}
	return filepath.Join(dir, table, "cluster="+cluster, "date="+t.Format("2006-01-02"), segment+segmentSuffix), nil
}

// JournalPath is where the journal of an open segment lives.
func JournalPath(dir, segment string) string {
	return filepath.Join(dir, journalDir, segment+journalSuffix)
}

// Journals lists the journals in a recording directory, oldest first.
func Journals(dir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, journalDir))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list journals: %w", err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(name, journalSuffix) && ValidSegmentID(strings.TrimSuffix(name, journalSuffix)) {
			out = append(out, filepath.Join(dir, journalDir, name))
		}
	}
	return out, nil // ReadDir sorts by name, and names sort by time
}

// mkdirAll creates dir and its parents with DirMode.
func mkdirAll(dir string) error {
	return os.MkdirAll(dir, DirMode)
}

// syncDir fsyncs a directory so that a rename or create in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
