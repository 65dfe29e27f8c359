package recording

import (
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
)

// pageCodec is zstd for Parquet pages with a window no larger than a page:
// pages are compressed one at a time and never refer to each other, so a
// larger window (zstd's default is 8 MiB) only costs the recorder memory.
// Files stay plain ZSTD for any reader.
type pageCodec struct {
	once sync.Once
	enc  *zstd.Encoder
	mu   sync.Mutex
	err  error
}

func (c *pageCodec) init() {
	c.once.Do(func() {
		c.enc, c.err = zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithWindowSize(pageWindow),
			zstd.WithLowerEncoderMem(true),
			zstd.WithZeroFrames(true),
			zstd.WithEncoderCRC(false))
	})
}

// pageWindow covers a whole page (pageBufferSize, before encoding).
const pageWindow = 256 << 10

func (c *pageCodec) String() string                            { return "ZSTD" }
func (c *pageCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *pageCodec) Encode(dst, src []byte) ([]byte, error) {
	c.init()
	if c.err != nil {
		return dst[:0], c.err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enc.EncodeAll(src, dst[:0]), nil
}

// Decode inflates a page with the bound every reader of recordings uses.
func (c *pageCodec) Decode(dst, src []byte) ([]byte, error) { return DecodePage(dst, src) }
