package recording

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parquet-go/parquet-go"
)

// Errors a reader can branch on with errors.Is.
var (
	// ErrNotRecording: the directory or file is not a lockscope recording.
	ErrNotRecording = errors.New("not a lockscope recording")
	// ErrSchemaVersion: the file was written with a schema version this
	// build does not read.
	ErrSchemaVersion = errors.New("unsupported recording schema version")
	// ErrLocked: another recorder holds the recording directory.
	ErrLocked = errors.New("recording directory in use by another lockscope process")
)

// TableFile is one opened table file of a recording.
type TableFile struct {
	Path  string
	Table string
	Meta  Meta
	File  *parquet.File
	f     *os.File
}

// Close closes the file.
func (t *TableFile) Close() error { return t.f.Close() }

// OpenTableFile opens a table file and checks its lockscope metadata. A
// file that is not Parquet, is truncated, or was written by another tool
// gets an error naming the file and wrapping ErrNotRecording.
func OpenTableFile(path string) (tf *TableFile, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	pf, err := openParquet(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("open %s: not a readable Parquet file (truncated or damaged?): %v: %w", path, err, ErrNotRecording)
	}
	// A damaged schema can make parquet-go panic while comparing it.
	defer RecoverDamaged(path, &err)
	return checkTableFile(path, f, pf)
}

func openParquet(r io.ReaderAt, size int64) (pf *parquet.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			pf, err = nil, fmt.Errorf("parquet reader: %v", p)
		}
	}()
	// The footer's declared length is checked before parquet-go sizes a
	// buffer by it; the page indexes, which it would also read at their
	// declared lengths, are not needed.
	if err := CheckFooter(r, size); err != nil {
		return nil, err
	}
	pf, err = parquet.OpenFile(r, size, parquet.SkipBloomFilters(true), parquet.SkipPageIndex(true))
	if err != nil {
		return nil, err
	}
	for rg, g := range pf.Metadata().RowGroups {
		for col, c := range g.Columns {
			m := c.MetaData
			start := m.DataPageOffset
			if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < start {
				start = m.DictionaryPageOffset
			}
			if err := CheckChunk(rg, col, start, m.TotalCompressedSize, m.TotalUncompressedSize, size); err != nil {
				return nil, err
			}
		}
	}
	return pf, nil
}

func checkTableFile(path string, f *os.File, pf *parquet.File) (*TableFile, error) {
	v, ok := pf.Lookup(KeySchemaVersion)
	if !ok {
		return nil, fmt.Errorf("open %s: no %s metadata (written by another tool?): %w", path, KeySchemaVersion, ErrNotRecording)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n != SchemaVersion {
		hint := "not a version lockscope ever wrote"
		if err == nil && n > SchemaVersion {
			hint = "written by a newer lockscope: upgrade lockscope to read it"
		}
		return nil, fmt.Errorf("open %s: schema version %q, this lockscope reads %d (%s): %w", path, v, SchemaVersion, hint, ErrSchemaVersion)
	}
	table, _ := pf.Lookup(KeyTable)
	idx, err := tableIndex(table)
	if err != nil {
		return nil, fmt.Errorf("open %s: %v: %w", path, err, ErrNotRecording)
	}
	if !parquet.EqualNodes(pf.Schema(), tables[idx].schema) {
		return nil, fmt.Errorf("open %s: columns do not match the %s table of schema version %d: %w", path, table, SchemaVersion, ErrNotRecording)
	}
	var meta Meta
	raw, _ := pf.Lookup(KeyMeta)
	if err := json.Unmarshal([]byte(raw), &meta); err != nil {
		return nil, fmt.Errorf("open %s: unreadable %s metadata: %v: %w", path, KeyMeta, err, ErrNotRecording)
	}
	return &TableFile{Path: path, Table: table, Meta: meta, File: pf, f: f}, nil
}

// ReadTable reads every row of a table file into T, which must be the
// table's row type (Activity for activity, and so on). It serves tests and
// tools on lockscope's own recordings: parquet-go sizes page buffers by the
// page headers, so a damaged file can make it allocate what a header
// claims. The commands read recordings with analyze's reader, which bounds
// that.
func ReadTable[T any](path string) (rows []T, meta Meta, err error) {
	tf, err := OpenTableFile(path)
	if err != nil {
		return nil, meta, err
	}
	defer tf.Close()
	defer RecoverDamaged(path, &err)
	var zero T
	if want := parquet.SchemaOf(zero); !parquet.EqualNodes(want, tf.File.Schema()) {
		return nil, meta, fmt.Errorf("read %s: a %s file does not hold %T rows", path, tf.Table, zero)
	}
	r := parquet.NewGenericReader[T](tf.File)
	defer r.Close()
	rows = make([]T, 0, min(r.NumRows(), 1<<20))
	buf := make([]T, 1024)
	for {
		n, err := r.Read(buf)
		rows = append(rows, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, meta, fmt.Errorf("read %s: %w", path, err)
		}
	}
	return rows, tf.Meta, nil
}

// List returns the sealed segments of a recording directory, ordered by
// start time, and fails on the first damaged one (see Scan, which lists
// them instead). Open journals are not listed: see Journals.
func List(dir string) ([]Segment, error) {
	segs, err := Scan(dir)
	if err != nil {
		return nil, err
	}
	for _, s := range segs {
		if s.Damage != nil {
			return nil, s.Damage.Err
		}
	}
	return segs, nil
}

// Damage says why a segment cannot be read: the first of its files that
// does not open as a lockscope table file (truncated, damaged, written by
// another tool or by a newer lockscope).
type Damage struct {
	// File is the damaged file's path.
	File string
	// Reason is what is wrong with it, without the path.
	Reason string
	// Err is the error opening it (wrapping ErrNotRecording or
	// ErrSchemaVersion).
	Err error
}

// Scan returns every segment of a recording directory, good and damaged,
// ordered by start time. A segment is listed once its ticks file exists
// (it is renamed into place last). Every table file of a segment is
// opened and checked; a segment with one that does not open has Damage
// set, and only what its file names and times tell in Meta: the segment
// id, the cluster, the start (from the id, else the ticks file's
// modification time) and the end (the modification time). Nothing is
// removed or rewritten. Open journals are not listed: see Journals.
func Scan(dir string) ([]Segment, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("list recording: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("list recording %s: not a directory: %w", dir, ErrNotRecording)
	}
	ticks, err := filepath.Glob(filepath.Join(dir, TableTicks, "cluster=*", "date=*", "*"+segmentSuffix))
	if err != nil {
		return nil, fmt.Errorf("list recording: %w", err)
	}
	var segs []Segment
	for _, path := range ticks {
		rel, err := filepath.Rel(filepath.Join(dir, TableTicks), path)
		if err != nil {
			return nil, err
		}
		seg := Segment{Files: map[string]string{}}
		for _, t := range tables {
			p := filepath.Join(dir, t.name, rel)
			fi, err := os.Stat(p)
			if err != nil {
				continue
			}
			seg.Files[t.name] = p
			seg.Bytes += fi.Size()
			if seg.Damage != nil {
				continue
			}
			tf, err := OpenTableFile(p)
			if err != nil {
				seg.Damage = &Damage{File: p, Reason: strings.TrimPrefix(err.Error(), "open "+p+": "), Err: err}
				continue
			}
			if t.name == TableTicks {
				seg.Meta = tf.Meta
			}
			tf.Close()
		}
		if seg.Damage != nil {
			seg.Meta = damagedMeta(path, rel)
		}
		segs = append(segs, seg)
	}
	sort.Slice(segs, func(i, j int) bool {
		a, b := segs[i].Meta, segs[j].Meta
		if a.StartUS != b.StartUS {
			return a.StartUS < b.StartUS
		}
		return a.Segment+a.Cluster < b.Segment+b.Cluster
	})
	return segs, nil
}

// damagedMeta is what a damaged segment's path tells: rel is
// cluster=C/date=D/ID.parquet.
func damagedMeta(path, rel string) Meta {
	var m Meta
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) == 3 {
		m.Cluster = strings.TrimPrefix(parts[0], "cluster=")
		m.Segment = strings.TrimSuffix(parts[2], segmentSuffix)
	}
	var mtime time.Time
	if fi, err := os.Stat(path); err == nil {
		mtime = fi.ModTime()
	}
	start := mtime
	if t, err := segmentTime(m.Segment); err == nil {
		start = t
	}
	m.StartUS, m.EndUS = start.UnixMicro(), max(mtime.UnixMicro(), start.UnixMicro())
	return m
}

// Remove deletes a sealed segment's files, ticks first so that a segment
// that is half removed is no longer listed.
func Remove(seg Segment) error {
	order := append([]string{TableTicks}, Tables()...)
	for _, t := range order {
		p, ok := seg.Files[t]
		if !ok {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove segment %s: %w", seg.Meta.Segment, err)
		}
		delete(seg.Files, t)
	}
	return nil
}

// Recover seals every journal left in dir by a recorder that did not stop
// cleanly, and removes temporary files of interrupted seals. The caller
// must hold the directory's lock (LockDir).
func Recover(dir string) ([]SealResult, error) {
	tmps, _ := filepath.Glob(filepath.Join(dir, "*", "cluster=*", "date=*", "*"+segmentSuffix+tmpSuffix))
	for _, p := range tmps {
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("recover: remove %s: %w", p, err)
		}
	}
	stale, _ := filepath.Glob(filepath.Join(dir, journalDir, sealTempPattern))
	for _, p := range stale {
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("recover: remove %s: %w", p, err)
		}
	}
	journals, err := Journals(dir)
	if err != nil {
		return nil, err
	}
	var out []SealResult
	for _, j := range journals {
		res, err := Seal(dir, j, true)
		if err != nil {
			return out, fmt.Errorf("recover: %w", err)
		}
		out = append(out, res)
	}
	return out, nil
}

// LockDir takes the recording directory's lock file (DIR/.lock), creating the
// directory with DirMode if needed. It fails with ErrLocked while another
// process holds it. Call the returned function to release it.
func LockDir(dir string) (unlock func(), err error) {
	if err := mkdirAll(dir); err != nil {
		return nil, fmt.Errorf("create recording directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return nil, fmt.Errorf("lock recording directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("lock recording directory: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// Manifest is the index of a recording, written to DIR/manifest.json after
// every sealed or removed segment. It is derived from the segments' own
// metadata and can always be rebuilt from them (WriteManifest).
type Manifest struct {
	Format        string            `json:"format"`
	SchemaVersion int               `json:"schema_version"`
	Segments      []ManifestSegment `json:"segments"`
}

// ManifestSegment is one segment in the manifest.
type ManifestSegment struct {
	ID             string            `json:"id"`
	Cluster        string            `json:"cluster"`
	Start          time.Time         `json:"start"`
	End            time.Time         `json:"end"`
	Ticks          int64             `json:"ticks"`
	LockWaitTicks  int64             `json:"lock_wait_ticks"`
	MaxLockWaiters int32             `json:"max_lock_waiters"`
	Bytes          int64             `json:"bytes"`
	Recovered      bool              `json:"recovered,omitempty"`
	Files          map[string]string `json:"files"`
}

// ManifestFile is the manifest's name in a recording directory.
const ManifestFile = "manifest.json"

// WriteManifest rewrites DIR/manifest.json from segs atomically, leaving
// out damaged segments.
func WriteManifest(dir string, segs []Segment) error {
	m := Manifest{Format: "lockscope-recording", SchemaVersion: SchemaVersion, Segments: []ManifestSegment{}}
	for _, s := range segs {
		if s.Damage != nil {
			continue // unreadable: the manifest indexes what can be read
		}
		ms := ManifestSegment{
			ID: s.Meta.Segment, Cluster: s.Meta.Cluster,
			Start: time.UnixMicro(s.Meta.StartUS).UTC(), End: time.UnixMicro(s.Meta.EndUS).UTC(),
			Ticks: s.Meta.Ticks, LockWaitTicks: s.Meta.LockWaitTicks, MaxLockWaiters: s.Meta.MaxLockWaiters,
			Bytes: s.Bytes, Recovered: s.Meta.Recovered, Files: map[string]string{},
		}
		for t, p := range s.Files {
			if rel, err := filepath.Rel(dir, p); err == nil {
				ms.Files[t] = filepath.ToSlash(rel)
			}
		}
		m.Segments = append(m.Segments, ms)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return WriteFileAtomic(filepath.Join(dir, ManifestFile), append(b, '\n'))
}

// WriteAtomic writes path (mode FileMode) through write under a
// temporary name, syncs it, renames it into place and syncs the directory:
// a reader finds the old file or the whole new one, after a crash too.
// write gets the file as a plain io.Writer (closing it is WriteAtomic's).
func WriteAtomic(path string, write func(io.Writer) error) error {
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, FileMode)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	werr := write(struct{ io.Writer }{f})
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return syncDir(filepath.Dir(path))
}

// WriteFileAtomic is WriteAtomic for data in hand.
func WriteFileAtomic(path string, data []byte) error {
	return WriteAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
