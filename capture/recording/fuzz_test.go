package recording

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
)

// seedJournal is a real journal of three samples, written by the writer
// the recorder uses.
func seedJournal(f *testing.F) []byte {
	f.Helper()
	dir := f.TempDir()
	t0 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	w, err := CreateJournal(dir, testMeta(t0))
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		s := testSample(int64(i+1), t0.Add(time.Duration(i)*250*time.Millisecond).UnixMicro(), int32(i))
		if _, err := w.Append(&s); err != nil {
			f.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(w.Path())
	if err != nil {
		f.Fatal(err)
	}
	return data
}

// FuzzRecoverJournal: whatever a journal holds — torn, flipped, foreign —
// recover seals the whole records before the damage or fails with an
// error naming the journal, never panics, and whatever it seals reads back
// in full. The corpus lives in testdata/fuzz/FuzzRecoverJournal.
func FuzzRecoverJournal(f *testing.F) {
	data := seedJournal(f)
	f.Add(data, uint32(0), byte(0))
	f.Add(data[:len(data)*2/3], uint32(0), byte(0))
	f.Add(data, uint32(len(data)/2), byte(0x20))
	f.Add(data, uint32(len(journalMagic)+1), byte(0x7f)) // a record length
	f.Add([]byte(journalMagic), uint32(0), byte(0))
	f.Add([]byte("PAR1 not a journal"), uint32(0), byte(0))
	f.Fuzz(func(t *testing.T, content []byte, at uint32, flip byte) {
		b := append([]byte(nil), content...)
		if int(at) < len(b) {
			b[at] ^= flip
		}
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, journalDir), DirMode); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, journalDir, "20261124T090000.000000Z"+journalSuffix)
		if err := os.WriteFile(path, b, FileMode); err != nil {
			t.Fatal(err)
		}
		_, err := Recover(dir)
		if err != nil {
			if !strings.Contains(err.Error(), path) && !strings.Contains(err.Error(), filepath.Base(path)) {
				t.Errorf("error does not name the journal: %v", err)
			}
			return
		}
		segs, err := List(dir)
		if err != nil {
			t.Fatalf("list after recover: %v", err)
		}
		for _, s := range segs {
			for _, p := range s.Files {
				tf, err := OpenTableFile(p)
				if err != nil {
					t.Fatalf("recover sealed an unreadable file: %v", err)
				}
				tf.Close()
			}
		}
	})
}

// FuzzDecodeSample: a record that passed its checksum but holds nonsense
// (a writer bug, a foreign tool) is refused with an error, never a panic
// or an allocation sized by the input. The fuzzer reaches decodeSample
// directly: it cannot forge the checksums that guard it in a journal.
func FuzzDecodeSample(f *testing.F) {
	data := seedJournal(f)
	// The raw body of each sample record of the seed journal.
	dec, err := zstd.NewReader(nil)
	if err != nil {
		f.Fatal(err)
	}
	defer dec.Close()
	b := data[len(journalMagic):]
	for len(b) >= recordHeaderSize {
		n := binary.LittleEndian.Uint32(b[0:4])
		body := b[recordHeaderSize : recordHeaderSize+int(n)]
		if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[8:12]) {
			f.Fatal("seed journal checksum")
		}
		raw, err := dec.DecodeAll(body, nil)
		if err != nil {
			f.Fatal(err)
		}
		if len(raw) > 0 && raw[0] == recordSample {
			f.Add(raw[1:])
		}
		b = b[recordHeaderSize+int(n):]
	}
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeSample(b, func(int) bool { return true }, func(int, parquet.Row) error { return nil })
	})
}
