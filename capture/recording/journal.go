package recording

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
)

// The journal holds the open segment. Its layout:
//
//	magic "LSJ1"
//	record*    record = u32 body length | u32 raw length | u32 CRC-32C of body | body
//
// body is a zstd frame; decompressed, its first byte is the record type:
// 'M' (Meta as JSON, always the first record) or 'S' (a Sample: per
// non-empty table, u8 table index, u32 block length, uvarint row count,
// rows in parquet-go's Row form). A record is appended with one write, so a crash leaves at most
// one torn record at the end, which the CRC rejects.
const (
	journalMagic     = "LSJ1"
	recordHeaderSize = 12
	recordMeta       = 'M'
	recordSample     = 'S'
	// maxRecordBytes bounds a record, compressed or not, so that a damaged
	// length cannot make a reader allocate without limit.
	maxRecordBytes = 256 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrJournalDamaged reports a journal whose records stop making sense
// before its end: everything before the damage is still readable.
var ErrJournalDamaged = errors.New("journal damaged")

// JournalWriter appends samples to the journal of an open segment.
type JournalWriter struct {
	f    *os.File
	path string
	enc  *zstd.Encoder
	meta Meta
	size int64
	// scratch buffers reused across records.
	raw, comp []byte
	row       parquet.Row
}

// CreateJournal creates the journal for a new segment, writing meta as its
// first record and syncing it. The file is created with FileMode.
func CreateJournal(dir string, meta Meta) (*JournalWriter, error) {
	if !ValidSegmentID(meta.Segment) {
		return nil, fmt.Errorf("create journal: invalid segment id %q", meta.Segment)
	}
	path := JournalPath(dir, meta.Segment)
	if err := mkdirAll(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("create journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, FileMode)
	if err != nil {
		return nil, fmt.Errorf("create journal: %w", err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithLowerEncoderMem(true))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create journal: %w", err)
	}
	w := &JournalWriter{f: f, path: path, enc: enc, meta: meta}
	if _, err := f.Write([]byte(journalMagic)); err != nil {
		w.abandon()
		return nil, fmt.Errorf("create journal %s: %w", path, err)
	}
	w.size = int64(len(journalMagic))
	if err := w.writeMeta(); err != nil {
		w.abandon()
		return nil, err
	}
	if err := w.Sync(); err != nil {
		w.abandon()
		return nil, err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		w.abandon()
		return nil, fmt.Errorf("create journal: %w", err)
	}
	return w, nil
}

// abandon closes and removes a journal that could not be started.
func (w *JournalWriter) abandon() {
	w.f.Close()
	os.Remove(w.path)
}

// Path returns the journal's file name.
func (w *JournalWriter) Path() string { return w.path }

// Size returns the bytes written so far.
func (w *JournalWriter) Size() int64 { return w.size }

// Segment returns the id of the journal's segment.
func (w *JournalWriter) Segment() string { return w.meta.Segment }

// UpdateMeta appends a new Meta record; the last one read wins. It is used
// when something learned after the segment began (a privilege warning, say)
// belongs in its metadata.
func (w *JournalWriter) UpdateMeta(meta Meta) error {
	meta.Segment = w.meta.Segment
	w.meta = meta
	return w.writeMeta()
}

func (w *JournalWriter) writeMeta() error {
	b, err := json.Marshal(&w.meta)
	if err != nil {
		return fmt.Errorf("encode journal metadata: %w", err)
	}
	w.raw = append(append(w.raw[:0], recordMeta), b...)
	_, err = w.writeRecord()
	return err
}

// Append writes one sample as one record and returns the record's size on
// disk. On a write error the journal is truncated back to its last whole
// record, so it stays readable; the error wraps the system's (for a full
// disk, syscall.ENOSPC).
func (w *JournalWriter) Append(s *Sample) (int, error) {
	b := append(w.raw[:0], recordSample)
	if s.Tick != nil {
		b = appendTable(b, idxTicks, []Tick{*s.Tick}, &w.row)
	}
	b = appendTable(b, idxEvents, s.Events, &w.row)
	b = appendTable(b, idxActivity, s.Activity, &w.row)
	b = appendTable(b, idxLocks, s.Locks, &w.row)
	b = appendTable(b, idxEdges, s.Edges, &w.row)
	b = appendTable(b, idxRelations, s.Relations, &w.row)
	b = appendTable(b, idxPgBouncerPools, s.PgBouncerPools, &w.row)
	b = appendTable(b, idxPgBouncerServers, s.PgBouncerServers, &w.row)
	b = appendTable(b, idxOdooModules, s.OdooModules, &w.row)
	b = appendTable(b, idxPreparedXacts, s.PreparedXacts, &w.row)
	w.raw = b
	return w.writeRecord()
}

// appendTable encodes the rows of one table: its index, the row count and
// each row.
func appendTable[T any](b []byte, idx int, rows []T, scratch *parquet.Row) []byte {
	if len(rows) == 0 {
		return b
	}
	schema := tables[idx].schema
	b = append(b, byte(idx), 0, 0, 0, 0)
	start := len(b)
	b = binary.AppendUvarint(b, uint64(len(rows)))
	for i := range rows {
		*scratch = schema.Deconstruct((*scratch)[:0], &rows[i])
		b = appendRow(b, *scratch)
	}
	binary.LittleEndian.PutUint32(b[start-4:start], uint32(len(b)-start))
	return b
}

// appendRow encodes a parquet Row: uvarint value count, then per value a
// kind byte (0 for NULL), repetition and definition levels, uvarint column
// index, and the value.
func appendRow(b []byte, row parquet.Row) []byte {
	b = binary.AppendUvarint(b, uint64(len(row)))
	for _, v := range row {
		kind := byte(0)
		if !v.IsNull() {
			kind = byte(v.Kind()) + 1
		}
		b = append(b, kind, byte(v.RepetitionLevel()), byte(v.DefinitionLevel()))
		b = binary.AppendUvarint(b, uint64(v.Column()))
		if kind == 0 {
			continue
		}
		switch v.Kind() {
		case parquet.Boolean:
			if v.Boolean() {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		case parquet.Int32:
			b = binary.AppendVarint(b, int64(v.Int32()))
		case parquet.Int64:
			b = binary.AppendVarint(b, v.Int64())
		case parquet.Float:
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v.Float()))
		case parquet.Double:
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Double()))
		default: // ByteArray, FixedLenByteArray, Int96
			ba := v.ByteArray()
			b = binary.AppendUvarint(b, uint64(len(ba)))
			b = append(b, ba...)
		}
	}
	return b
}

func (w *JournalWriter) writeRecord() (int, error) {
	if len(w.raw) > maxRecordBytes {
		return 0, fmt.Errorf("journal record of %d bytes exceeds the limit of %d", len(w.raw), maxRecordBytes)
	}
	w.comp = append(w.comp[:0], make([]byte, recordHeaderSize)...)
	w.comp = w.enc.EncodeAll(w.raw, w.comp)
	body := w.comp[recordHeaderSize:]
	binary.LittleEndian.PutUint32(w.comp[0:4], uint32(len(body)))
	binary.LittleEndian.PutUint32(w.comp[4:8], uint32(len(w.raw)))
	binary.LittleEndian.PutUint32(w.comp[8:12], crc32.Checksum(body, crcTable))
	n, err := w.f.Write(w.comp)
	if err != nil {
		// A short write leaves a torn record: cut it off so the journal
		// ends on a whole record.
		if n > 0 {
			if terr := w.f.Truncate(w.size); terr != nil {
				return 0, fmt.Errorf("write journal %s: %w (and truncating the torn record: %v)", w.path, err, terr)
			}
			if _, serr := w.f.Seek(w.size, io.SeekStart); serr != nil {
				return 0, fmt.Errorf("write journal %s: %w", w.path, serr)
			}
		}
		return 0, fmt.Errorf("write journal %s: %w", w.path, err)
	}
	w.size += int64(n)
	return n, nil
}

// Sync flushes the journal to stable storage.
func (w *JournalWriter) Sync() error {
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync journal %s: %w", w.path, err)
	}
	return nil
}

// Close syncs and closes the journal file. The journal stays on disk until
// its segment is sealed.
func (w *JournalWriter) Close() error {
	serr := w.f.Sync()
	cerr := w.f.Close()
	w.enc.Close()
	if serr != nil {
		return fmt.Errorf("sync journal %s: %w", w.path, serr)
	}
	if cerr != nil {
		return fmt.Errorf("close journal %s: %w", w.path, cerr)
	}
	return nil
}

// journalReader reads the records of a journal in order.
type journalReader struct {
	r    *bufio.Reader
	path string
	dec  *zstd.Decoder
	hdr  [recordHeaderSize]byte
	body []byte
	raw  []byte
	// offset of the next record, for error messages.
	offset int64
}

func openJournal(path string) (*journalReader, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open journal: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<16)
	magic := make([]byte, len(journalMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != journalMagic {
		f.Close()
		return nil, nil, fmt.Errorf("open journal %s: not a lockscope journal: %w", path, ErrJournalDamaged)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxRecordBytes))
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open journal: %w", err)
	}
	return &journalReader{r: br, path: path, dec: dec, offset: int64(len(journalMagic))}, f, nil
}

func (r *journalReader) close() { r.dec.Close() }

// next returns the next record's decompressed body. It returns io.EOF at
// a clean end and an error wrapping ErrJournalDamaged at a torn or damaged
// record.
func (r *journalReader) next() ([]byte, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("journal %s at byte %d: torn record header: %w", r.path, r.offset, ErrJournalDamaged)
	}
	n := binary.LittleEndian.Uint32(r.hdr[0:4])
	rawLen := binary.LittleEndian.Uint32(r.hdr[4:8])
	sum := binary.LittleEndian.Uint32(r.hdr[8:12])
	if n > maxRecordBytes || rawLen > maxRecordBytes {
		return nil, fmt.Errorf("journal %s at byte %d: record length %d out of range: %w", r.path, r.offset, n, ErrJournalDamaged)
	}
	if cap(r.body) < int(n) {
		r.body = make([]byte, n)
	}
	r.body = r.body[:n]
	if _, err := io.ReadFull(r.r, r.body); err != nil {
		return nil, fmt.Errorf("journal %s at byte %d: torn record: %w", r.path, r.offset, ErrJournalDamaged)
	}
	if crc32.Checksum(r.body, crcTable) != sum {
		return nil, fmt.Errorf("journal %s at byte %d: checksum mismatch: %w", r.path, r.offset, ErrJournalDamaged)
	}
	raw, err := r.dec.DecodeAll(r.body, r.raw[:0])
	if err != nil || len(raw) != int(rawLen) || len(raw) == 0 {
		return nil, fmt.Errorf("journal %s at byte %d: undecodable record: %w", r.path, r.offset, ErrJournalDamaged)
	}
	r.raw = raw
	r.offset += int64(recordHeaderSize) + int64(n)
	return raw, nil
}

// decodeSample splits a sample record into per-table rows and calls fn for
// each row of the tables in want; the others are skipped undecoded. Rows
// passed to fn are only valid during the call.
func decodeSample(b []byte, want func(table int) bool, fn func(table int, row parquet.Row) error) error {
	var row parquet.Row
	for len(b) > 0 {
		if len(b) < 5 {
			return errors.New("short table header")
		}
		idx := int(b[0])
		size := binary.LittleEndian.Uint32(b[1:5])
		b = b[5:]
		if idx >= len(tables) {
			return fmt.Errorf("table index %d out of range", idx)
		}
		if uint64(size) > uint64(len(b)) {
			return errors.New("table block overruns its record")
		}
		if !want(idx) {
			b = b[size:]
			continue
		}
		block, rest := b[:size], b[size:]
		b = block
		count, n := binary.Uvarint(b)
		if n <= 0 || count > uint64(len(b)) {
			return errors.New("bad row count")
		}
		b = b[n:]
		leaves := len(tables[idx].schema.Columns())
		for range count {
			var err error
			row, b, err = decodeRow(row[:0], b, leaves)
			if err != nil {
				return err
			}
			if err := fn(idx, row); err != nil {
				return err
			}
		}
		if len(b) != 0 {
			return errors.New("table block longer than its rows")
		}
		b = rest
	}
	return nil
}

func decodeRow(row parquet.Row, b []byte, leaves int) (parquet.Row, []byte, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return row, b, errors.New("bad value count")
	}
	b = b[n:]
	for range count {
		if len(b) < 3 {
			return row, b, errors.New("short value")
		}
		kind, rep, def := b[0], int(b[1]), int(b[2])
		b = b[3:]
		col, n := binary.Uvarint(b)
		if n <= 0 || col >= uint64(leaves) {
			return row, b, errors.New("bad column index")
		}
		b = b[n:]
		var v parquet.Value
		if kind == 0 {
			v = parquet.NullValue()
		} else {
			switch parquet.Kind(kind - 1) {
			case parquet.Boolean:
				if len(b) < 1 {
					return row, b, errors.New("short boolean")
				}
				v = parquet.BooleanValue(b[0] != 0)
				b = b[1:]
			case parquet.Int32:
				x, n := binary.Varint(b)
				if n <= 0 {
					return row, b, errors.New("bad int32")
				}
				v = parquet.Int32Value(int32(x))
				b = b[n:]
			case parquet.Int64:
				x, n := binary.Varint(b)
				if n <= 0 {
					return row, b, errors.New("bad int64")
				}
				v = parquet.Int64Value(x)
				b = b[n:]
			case parquet.Float:
				if len(b) < 4 {
					return row, b, errors.New("short float")
				}
				v = parquet.FloatValue(math.Float32frombits(binary.LittleEndian.Uint32(b)))
				b = b[4:]
			case parquet.Double:
				if len(b) < 8 {
					return row, b, errors.New("short double")
				}
				v = parquet.DoubleValue(math.Float64frombits(binary.LittleEndian.Uint64(b)))
				b = b[8:]
			case parquet.ByteArray:
				l, n := binary.Uvarint(b)
				if n <= 0 || l > uint64(len(b)-n) {
					return row, b, errors.New("bad byte array")
				}
				v = parquet.ByteArrayValue(b[n : n+int(l)])
				b = b[n+int(l):]
			default:
				return row, b, fmt.Errorf("unsupported value kind %d", kind-1)
			}
		}
		row = append(row, v.Level(rep, def, int(col)))
	}
	return row, b, nil
}
