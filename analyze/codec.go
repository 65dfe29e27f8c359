package analyze

import (
	"sync"

	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/lockscope/lockscope/capture/recording"
)

// Arrow's zstd codec inflates a page to whatever its frame claims, up to
// 64 GiB: a damaged or hostile file could make analyze allocate that.
// Arrow looks codecs up in a process-wide table and takes no codec per
// reader, so the first recording analyze opens registers, once, a zstd
// codec that inflates with capture/recording's bounded page decoder.
// Importing analyze changes nothing; a program that reads recordings
// through it gets the bound for every Parquet file it reads with Arrow,
// which only refuses pages larger than Arrow's own default page limit.
var boundZstd = sync.OnceFunc(func() {
	if orig, err := compress.GetCodec(compress.Codecs.Zstd); err == nil {
		compress.RegisterCodec(compress.Codecs.Zstd, boundedZstd{orig})
	}
})

type boundedZstd struct{ compress.Codec }

func (b boundedZstd) Decode(dst, src []byte) []byte {
	out, err := b.DecodeWithError(dst, src)
	if err != nil {
		panic(err)
	}
	return out
}

func (boundedZstd) DecodeWithError(dst, src []byte) ([]byte, error) {
	return recording.DecodePage(dst, src)
}
