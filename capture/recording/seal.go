package recording

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/parquet-go/parquet-go"
)

// Writer settings. A row group costs a footer entry and a dictionary page
// per column (10–25 KB), so segments are written with few, large row
// groups; pages stay small so that sealing needs little memory.
const (
	maxRowsPerRowGroup = 1 << 20
	pageBufferSize     = 128 << 10
)

// Segment describes one sealed segment of a recording.
type Segment struct {
	Meta Meta
	// Files maps a table name to its Parquet file.
	Files map[string]string
	// Bytes is the size of all of the segment's files.
	Bytes int64
	// Damage is set, by Scan, on a segment that cannot be read.
	Damage *Damage
}

// SealResult tells what sealing a journal found.
type SealResult struct {
	Segment Segment
	// Empty is true when the journal held no samples; nothing was written.
	Empty bool
	// Damage describes a torn or damaged record at which reading stopped;
	// empty when the whole journal was read.
	Damage string
}

// Seal turns a journal into the Parquet files of its segment, then removes
// the journal. Files are written under a temporary name, synced and renamed,
// so an interrupted Seal leaves the journal in place and no partial file
// behind; sealing the same journal again is safe. recovered marks segments
// sealed from a journal that a stopped recorder left behind. A damaged
// record ends the journal: what came before it is kept, and the damage is
// reported in the result.
func Seal(dir, journal string, recovered bool) (SealResult, error) {
	var res SealResult
	s := &sealer{dir: dir}
	defer s.abort()
	// Two passes over the journal, so that only one large table's column
	// buffers are in memory at a time: first every table but locks (and
	// the metadata and tick summary), then locks.
	n, damage, err := s.pass(journal, func(idx int) bool { return idx != idxLocks }, -1)
	if err != nil {
		return res, fmt.Errorf("seal %s: %w", journal, err)
	}
	res.Damage = damage
	s.meta.Recovered = s.meta.Recovered || recovered
	s.meta.copySummary(&s.sum)
	if s.meta.Ticks == 0 && s.rows[idxEvents] == 0 {
		res.Empty = true
		return res, removeJournal(journal)
	}
	for idx := range tables {
		if idx != idxLocks {
			if err := s.closeTable(idx); err != nil {
				return res, fmt.Errorf("seal %s: %w", journal, err)
			}
		}
	}
	if s.blocks[idxLocks] > 0 {
		meta := s.meta // the second pass reads the metadata records again
		if _, _, err := s.pass(journal, func(idx int) bool { return idx == idxLocks }, n); err != nil {
			return res, fmt.Errorf("seal %s: %w", journal, err)
		}
		s.meta = meta
		if err := s.closeTable(idxLocks); err != nil {
			return res, fmt.Errorf("seal %s: %w", journal, err)
		}
	}
	seg, err := s.rename()
	if err != nil {
		return res, fmt.Errorf("seal %s: %w", journal, err)
	}
	res.Segment = seg
	return res, removeJournal(journal)
}

// pass reads the journal's first limit records (all when limit < 0) and
// writes the rows of the tables in want. It returns how many records it
// read and, when it stopped at a damaged record, the damage; a journal
// damaged before its metadata is an error.
func (s *sealer) pass(journal string, want func(int) bool, limit int) (records int, damage string, err error) {
	jr, f, err := openJournal(journal)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	defer jr.close()
	first := true
	for ; limit < 0 || records < limit; records++ {
		body, err := jr.next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, ErrJournalDamaged) && !first {
			return records, err.Error(), nil
		}
		if err != nil {
			return records, "", err
		}
		switch {
		case body[0] == recordMeta:
			var m Meta
			if err := json.Unmarshal(body[1:], &m); err != nil || !ValidSegmentID(m.Segment) {
				if first {
					return records, "", fmt.Errorf("unreadable metadata record: %w", ErrJournalDamaged)
				}
				return records, fmt.Sprintf("journal %s: unreadable metadata record", journal), nil
			}
			if !first && m.Segment != s.meta.Segment {
				return records, "", fmt.Errorf("metadata names segment %s, journal began as %s: %w", m.Segment, s.meta.Segment, ErrJournalDamaged)
			}
			s.meta = m
			first = false
		case body[0] == recordSample && !first:
			if err := decodeSample(body[1:], func(idx int) bool {
				s.blocks[idx]++
				return want(idx)
			}, s.writeRow); err != nil {
				var we *writeError
				if errors.As(err, &we) {
					return records, "", we.err
				}
				return records, fmt.Sprintf("journal %s: undecodable sample: %v", journal, err), nil
			}
		default:
			if first {
				return records, "", fmt.Errorf("no metadata record: %w", ErrJournalDamaged)
			}
			return records, fmt.Sprintf("journal %s: unknown record type %q", journal, body[0]), nil
		}
	}
	if first {
		return records, "", fmt.Errorf("no metadata record: %w", ErrJournalDamaged)
	}
	return records, "", nil
}

func removeJournal(path string) error {
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove sealed journal: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("remove sealed journal: %w", err)
	}
	return nil
}

// writeError marks an error from the file system (as opposed to a damaged
// record) while sealing.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// sealer streams rows into one Parquet writer per table.
type sealer struct {
	dir     string
	meta    Meta // the journal's last metadata record
	sum     Meta // the summary of the ticks read so far
	writers [numTables]*parquet.GenericWriter[any]
	files   [numTables]*os.File
	paths   [numTables]string
	rows    [numTables]int64
	blocks  [numTables]int64 // sample records with rows of each table
	one     [1]parquet.Row
}

var codec = &pageCodec{}

// sealTempPattern names the page buffers of a seal in progress; Recover
// removes any a crash left.
const sealTempPattern = ".seal-*"

func (s *sealer) writeRow(idx int, row parquet.Row) error {
	if idx == idxTicks {
		var t Tick
		if err := tables[idxTicks].schema.Reconstruct(&t, row); err != nil {
			return err
		}
		s.sum.observe(&t)
	}
	w, err := s.writer(idx)
	if err != nil {
		return &writeError{err}
	}
	s.one[0] = row
	if _, err := w.WriteRows(s.one[:]); err != nil {
		return &writeError{fmt.Errorf("write %s: %w", tables[idx].name, err)}
	}
	s.rows[idx]++
	return nil
}

func (s *sealer) writer(idx int) (*parquet.GenericWriter[any], error) {
	if w := s.writers[idx]; w != nil {
		return w, nil
	}
	path, err := TablePath(s.dir, tables[idx].name, s.meta.Cluster, s.meta.Segment)
	if err != nil {
		return nil, err
	}
	if err := mkdirAll(filepath.Dir(path)); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path+tmpSuffix, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, FileMode)
	if err != nil {
		return nil, err
	}
	s.files[idx], s.paths[idx] = f, path
	s.writers[idx] = parquet.NewGenericWriter[any](f,
		tables[idx].schema,
		parquet.Compression(codec),
		parquet.MaxRowsPerRowGroup(maxRowsPerRowGroup),
		parquet.PageBufferSize(pageBufferSize),
		// Version 1 pages compress their definition levels too; in version 2
		// they are stored raw, and NULL patterns repeat every sample.
		parquet.DataPageVersion(1),
		parquet.CreatedBy("lockscope", Version, ""),
		// Compressed pages wait for the end of their row group in temporary
		// files beside the journal, not in memory: a long burst segment
		// must not grow the recorder.
		parquet.ColumnPageBuffers(parquet.NewFileBufferPool(filepath.Join(s.dir, journalDir), sealTempPattern)),
	)
	return s.writers[idx], nil
}

// closeTable writes a table's footer with the final metadata and syncs
// its temporary file. Required tables are written even when empty.
func (s *sealer) closeTable(idx int) error {
	if s.writers[idx] == nil && !tables[idx].required {
		return nil
	}
	w, err := s.writer(idx)
	if err != nil {
		return err
	}
	kv, err := s.meta.metadataKV(tables[idx].name)
	if err != nil {
		return err
	}
	for k, v := range kv {
		w.SetKeyValueMetadata(k, v)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tables[idx].name, err)
	}
	s.writers[idx] = nil
	if err := s.files[idx].Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tables[idx].name, err)
	}
	if err := s.files[idx].Close(); err != nil {
		return fmt.Errorf("close %s: %w", tables[idx].name, err)
	}
	s.files[idx] = nil
	return nil
}

// rename moves every closed file into place, ticks last: a segment whose
// ticks file exists is whole.
func (s *sealer) rename() (Segment, error) {
	seg := Segment{Meta: s.meta, Files: map[string]string{}}
	order := []int{idxEvents, idxActivity, idxLocks, idxEdges, idxRelations, idxPgBouncerPools, idxPgBouncerServers, idxOdooModules, idxPreparedXacts, idxTicks}
	for _, idx := range order {
		if s.paths[idx] == "" {
			continue
		}
		if err := os.Rename(s.paths[idx]+tmpSuffix, s.paths[idx]); err != nil {
			return seg, err
		}
		if err := syncDir(filepath.Dir(s.paths[idx])); err != nil {
			return seg, err
		}
		fi, err := os.Stat(s.paths[idx])
		if err != nil {
			return seg, err
		}
		seg.Bytes += fi.Size()
		seg.Files[tables[idx].name] = s.paths[idx]
		s.paths[idx] = ""
	}
	return seg, nil
}

// abort closes and removes whatever temporary files are still open.
func (s *sealer) abort() {
	for idx := range tables {
		if s.files[idx] != nil {
			s.files[idx].Close()
		}
		if s.paths[idx] != "" {
			os.Remove(s.paths[idx] + tmpSuffix)
		}
	}
}

// WriteSegment writes samples as one sealed segment of the recording in
// dir, as a recorder that took them would have: a journal, appended to,
// closed and sealed. It serves tools and tests that make recordings from
// rows in hand.
func WriteSegment(dir string, meta Meta, samples ...*Sample) (Segment, error) {
	j, err := CreateJournal(dir, meta)
	if err != nil {
		return Segment{}, err
	}
	for _, s := range samples {
		if _, err := j.Append(s); err != nil {
			j.Close()
			return Segment{}, err
		}
	}
	if err := j.Close(); err != nil {
		return Segment{}, err
	}
	res, err := Seal(dir, j.Path(), false)
	return res.Segment, err
}
