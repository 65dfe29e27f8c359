package analyze

import (
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// maxPageBytes bounds what one compressed page of a recording may inflate
// to. The recorder writes 128 KiB data pages; dictionary pages of query
// text grow larger, but not near this.
const maxPageBytes = 256 << 20

// Arrow's zstd codec inflates a page to whatever its frame claims, up to
// 64 GiB: a damaged or hostile file could make analyze allocate that. The
// codec registered here refuses frames that claim more than maxPageBytes
// and caps the decoder's memory at that.
func init() {
	orig, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		return
	}
	compress.RegisterCodec(compress.Codecs.Zstd, boundedZstd{orig})
}

type boundedZstd struct{ compress.Codec }

var boundedDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxPageBytes), zstd.WithDecoderConcurrency(0))
})

func (b boundedZstd) Decode(dst, src []byte) []byte {
	out, err := b.DecodeWithError(dst, src)
	if err != nil {
		panic(err)
	}
	return out
}

func (boundedZstd) DecodeWithError(dst, src []byte) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(src); err == nil && h.HasFCS && h.FrameContentSize > maxPageBytes {
		return nil, fmt.Errorf("zstd page claims %d bytes, more than a recording's page can hold", h.FrameContentSize)
	}
	dec, err := boundedDecoder()
	if err != nil {
		return nil, err
	}
	return dec.DecodeAll(src, dst[:0])
}
