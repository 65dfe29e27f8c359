package recording

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// The checks below guard every reader of recordings, whichever Parquet
// library it uses (parquet-go here, Arrow's in analyze), against damaged or
// hostile files: a file's own numbers (the footer's length, a chunk's
// offset and size, a zstd frame's content size) are checked before a
// reader allocates by them, and a panic deep in a library becomes an error
// naming the file.

// MaxPageBytes bounds what one page of a recording may inflate to. The
// recorder writes 128 KiB data pages; dictionary pages of query text grow
// larger, but not near this.
const MaxPageBytes = 256 << 20

// MaxChunkBytes bounds a column chunk's declared uncompressed size: the
// recorder's segments rotate at 64 MiB of journal, so a chunk claiming
// more is damage.
const MaxChunkBytes = 1 << 30

// CheckFooter refuses a file too short for Parquet or whose footer claims
// more bytes than the file has.
func CheckFooter(r io.ReaderAt, size int64) error {
	var tail [8]byte
	if size < 12 {
		return errors.New("too short for a Parquet file")
	}
	if _, err := r.ReadAt(tail[:], size-8); err != nil {
		return err
	}
	if n := int64(binary.LittleEndian.Uint32(tail[:4])); n > size-12 {
		return fmt.Errorf("footer of %d bytes in a file of %d", n, size)
	}
	return nil
}

// CheckChunk refuses a column chunk (row group rg, column col) that the
// footer places outside the file or declares absurdly large.
func CheckChunk(rg, col int, start, compressed, uncompressed, size int64) error {
	if start < 0 || compressed < 0 || start > size || compressed > size-start || uncompressed < 0 || uncompressed > MaxChunkBytes {
		return fmt.Errorf("row group %d column %d: a chunk of %d bytes (%d uncompressed) at offset %d in a file of %d bytes",
			rg, col, compressed, uncompressed, start, size)
	}
	return nil
}

var pageDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxPageBytes), zstd.WithDecoderConcurrency(0))
})

// DecodePage inflates one zstd-compressed page into dst. A frame that
// claims more than MaxPageBytes is refused before anything is allocated
// for it, and the decoder never holds more than that.
func DecodePage(dst, src []byte) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(src); err == nil && h.HasFCS && h.FrameContentSize > MaxPageBytes {
		return nil, fmt.Errorf("zstd page claims %d bytes, more than a recording's page can hold", h.FrameContentSize)
	}
	dec, err := pageDecoder()
	if err != nil {
		return nil, err
	}
	return dec.DecodeAll(src, dst[:0])
}

// RecoverDamaged, deferred by a function reading path, turns a panic in a
// Parquet library into an error saying the file is damaged.
func RecoverDamaged(path string, err *error) {
	if p := recover(); p != nil {
		*err = Damaged(path, p)
	}
}

// Damaged is the error for a panic p recovered while reading path.
func Damaged(path string, p any) error {
	return fmt.Errorf("read %s: damaged file: %v: %w", path, p, ErrNotRecording)
}
