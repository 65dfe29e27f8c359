package analyze

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/lockscope/lockscope/capture/recording"
)

// batchSize is how many rows one Arrow record batch holds: memory stays
// bounded however long the recording is.
const batchSize = 16 << 10

// cursor streams the rows of one table across a sequence of files, in
// file order, as Arrow record batches converted row by row.
type cursor[T any] struct {
	ctx   context.Context
	mem   memory.Allocator
	files []string
	conv  func(columns) (func(int, *T), error)
	row1  func(int, *T) // conv bound to the current batch

	next int // index of the next file to open
	f    *os.File
	fr   *file.Reader
	rr   pqarrow.RecordReader
	rec  arrow.RecordBatch
	cols columns
	row  int
	err  error
}

func newCursor[T any](ctx context.Context, mem memory.Allocator, files []string, conv func(columns) (func(int, *T), error)) *cursor[T] {
	return &cursor[T]{ctx: ctx, mem: mem, files: files, conv: conv}
}

// peek converts the current row into out without consuming it. It returns
// false at the end of the files or on an error (see err).
func (c *cursor[T]) peek(out *T) bool {
	for c.rec == nil || c.row >= int(c.rec.NumRows()) {
		if !c.advance() {
			return false
		}
	}
	return c.convert(out)
}

// convert reads the current row; a value a damaged file points out of its
// buffers (a dictionary index, a string offset) ends the read with an
// error naming the file, not a panic.
func (c *cursor[T]) convert(out *T) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			c.err, ok = recording.Damaged(c.current(), p), false
		}
	}()
	c.row1(c.row, out)
	return true
}

// current names the file being read.
func (c *cursor[T]) current() string {
	if c.next == 0 {
		return "recording"
	}
	return c.files[c.next-1]
}

// skip consumes the current row.
func (c *cursor[T]) skip() { c.row++ }

func (c *cursor[T]) advance() (ok bool) {
	if c.err != nil {
		return false
	}
	// A damaged file must give an error naming it, never a panic.
	defer func() {
		if p := recover(); p != nil {
			c.err, ok = recording.Damaged(c.current(), p), false
		}
	}()
	if c.rec != nil {
		c.rec.Release()
		c.rec = nil
	}
	for {
		if c.rr != nil && c.rr.Next() {
			c.rec = c.rr.RecordBatch()
			c.rec.Retain()
			c.cols = columnsOf(c.rec)
			row1, err := c.conv(c.cols)
			if err != nil {
				c.err = fmt.Errorf("read %s: %w", c.files[c.next-1], err)
				return false
			}
			c.row1 = row1
			c.row = 0
			return true
		}
		if c.rr != nil {
			if err := c.rr.Err(); err != nil && !errors.Is(err, io.EOF) {
				c.err = fmt.Errorf("read %s: %w", c.files[c.next-1], err)
				return false
			}
			c.closeFile()
		}
		if c.next >= len(c.files) {
			return false
		}
		if err := c.open(c.files[c.next]); err != nil {
			c.err = err
			return false
		}
		c.next++
	}
}

func (c *cursor[T]) open(path string) (err error) {
	defer recording.RecoverDamaged(path, &err)
	boundZstd()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read recording: %w", err)
	}
	st, err := f.Stat()
	if err == nil {
		err = recording.CheckFooter(f, st.Size())
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("read %s: not a readable Parquet file: %w", path, err)
	}
	props := parquet.NewReaderProperties(c.mem)
	props.MaxUncompressedPageSize = recording.MaxPageBytes
	fr, err := file.NewParquetReader(f, file.WithReadProps(props))
	if err != nil {
		f.Close()
		return fmt.Errorf("read %s: not a readable Parquet file: %w", path, err)
	}
	if err := checkChunks(fr, f); err != nil {
		fr.Close()
		return fmt.Errorf("read %s: damaged file: %w", path, err)
	}
	props2 := pqarrow.ArrowReadProperties{BatchSize: batchSize}
	// Strings stay dictionary-encoded, as they are in the file: no copy
	// of each value into a string array.
	sch := fr.MetaData().Schema
	for i := range sch.NumColumns() {
		if sch.Column(i).PhysicalType() == parquet.Types.ByteArray {
			props2.SetReadDict(i, true)
		}
	}
	pr, err := pqarrow.NewFileReader(fr, props2, c.mem)
	if err != nil {
		fr.Close()
		return fmt.Errorf("read %s: %w", path, err)
	}
	rr, err := pr.GetRecordReader(c.ctx, nil, nil)
	if err != nil {
		fr.Close()
		return fmt.Errorf("read %s: %w", path, err)
	}
	c.f, c.fr, c.rr = f, fr, rr
	return nil
}

func (c *cursor[T]) closeFile() {
	if c.rr != nil {
		c.rr.Release()
		c.rr = nil
	}
	if c.fr != nil {
		c.fr.Close() // closes the file too
		c.fr, c.f = nil, nil
	}
}

// close releases everything the cursor holds; a nil cursor is fine.
func (c *cursor[T]) close() {
	if c == nil {
		return
	}
	if c.rec != nil {
		c.rec.Release()
		c.rec = nil
	}
	c.closeFile()
}

// columns gives access to a record batch's columns by name.
type columns map[string]arrow.Array

func columnsOf(rec arrow.RecordBatch) columns {
	cols := make(columns, rec.NumCols())
	for i, f := range rec.Schema().Fields() {
		cols[f.Name] = rec.Column(i)
	}
	return cols
}

// The readers of the recording's tables. Each binds a record batch's
// columns to the fields of capture/recording's row struct by the fields'
// parquet tags, the one definition of the schema: a column the struct
// names and the file lacks, or of another type, is an error naming it.
var (
	convTick            = bindRows[recording.Tick]
	convActivity        = bindRows[recording.Activity]
	convLock            = bindRows[recording.Lock]
	convEdge            = bindRows[recording.Edge]
	convRelation        = bindRows[recording.Relation]
	convEvent           = bindRows[recording.Event]
	convOdooModule      = bindRows[recording.OdooModule]
	convPreparedXact    = bindRows[recording.PreparedXact]
	convPgBouncerServer = bindRows[recording.PgBouncerServer]
)

// fieldKind is the Go type of a row struct's field.
type fieldKind int

const (
	kindInt64 fieldKind = iota
	kindInt32
	kindString
	kindBool
	kindInt64Ptr
	kindInt32Ptr
)

// field is one column of a row struct: its name in the file, its kind and
// where it sits in the struct.
type field struct {
	column string
	kind   fieldKind
	offset uintptr
}

var plans sync.Map // reflect.Type -> []field

// planOf lists T's columns from its parquet tags, once per type.
func planOf[T any]() ([]field, error) {
	rt := reflect.TypeFor[T]()
	if p, ok := plans.Load(rt); ok {
		return p.([]field), nil
	}
	var fs []field
	for i := range rt.NumField() {
		sf := rt.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("parquet"), ",")
		if name == "" || name == "-" {
			return nil, fmt.Errorf("%s.%s has no parquet column name", rt, sf.Name)
		}
		var k fieldKind
		switch t := sf.Type; {
		case t.Kind() == reflect.Int64:
			k = kindInt64
		case t.Kind() == reflect.Int32:
			k = kindInt32
		case t.Kind() == reflect.String:
			k = kindString
		case t.Kind() == reflect.Bool:
			k = kindBool
		case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Int64:
			k = kindInt64Ptr
		case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Int32:
			k = kindInt32Ptr
		default:
			return nil, fmt.Errorf("%s.%s: type %s has no reader", rt, sf.Name, t)
		}
		fs = append(fs, field{column: name, kind: k, offset: sf.Offset})
	}
	plans.Store(rt, fs)
	return fs, nil
}

// bindRows returns a function filling a T from row i of the batch: the
// columns are resolved once per batch, so per row there is no lookup by
// name, no type switch and no reflection.
func bindRows[T any](c columns) (func(int, *T), error) {
	plan, err := planOf[T]()
	if err != nil {
		return nil, err
	}
	sets := make([]func(int, unsafe.Pointer), len(plan))
	for j, f := range plan {
		a, ok := c[f.column]
		if !ok {
			return nil, fmt.Errorf("no column %q (a recording of another schema?)", f.column)
		}
		if sets[j] = setter(a, f); sets[j] == nil {
			return nil, fmt.Errorf("column %q is %s, not what lockscope writes", f.column, a.DataType())
		}
	}
	return func(i int, out *T) {
		p := unsafe.Pointer(out)
		for _, set := range sets {
			set(i, p)
		}
	}, nil
}

// setter writes row i of a into the field at f.offset; nil when a's type
// does not fit the field. NULL reads as the zero value, or nil for a
// pointer field.
func setter(a arrow.Array, f field) func(int, unsafe.Pointer) {
	off, nl := f.offset, nullsOf(a)
	switch f.kind {
	case kindInt64, kindInt64Ptr:
		var v []int64
		switch a := a.(type) {
		case *array.Int64:
			v = a.Int64Values()
		case *array.Timestamp:
			ts := a.TimestampValues() // arrow.Timestamp is an int64
			v = unsafe.Slice((*int64)(unsafe.Pointer(unsafe.SliceData(ts))), len(ts))
		default:
			return nil
		}
		return setNumber(v, f.kind == kindInt64Ptr, off, nl)
	case kindInt32, kindInt32Ptr:
		a, ok := a.(*array.Int32)
		if !ok {
			return nil
		}
		return setNumber(a.Int32Values(), f.kind == kindInt32Ptr, off, nl)
	case kindString:
		str := stringsOf(a)
		if str == nil {
			return nil
		}
		return func(i int, p unsafe.Pointer) {
			s := ""
			if !nl.at(i) {
				s = str(i)
			}
			*(*string)(unsafe.Add(p, off)) = s
		}
	case kindBool:
		a, ok := a.(*array.Boolean)
		if !ok {
			return nil
		}
		return func(i int, p unsafe.Pointer) { *(*bool)(unsafe.Add(p, off)) = !nl.at(i) && a.Value(i) }
	}
	return nil
}

// nulls reads a column's validity bitmap; with no NULLs, bits is nil.
type nulls struct {
	bits []byte
	off  int
}

func nullsOf(a arrow.Array) nulls {
	if a.NullN() == 0 {
		return nulls{}
	}
	return nulls{bits: a.NullBitmapBytes(), off: a.Data().Offset()}
}

// at reports whether row i is NULL.
func (n nulls) at(i int) bool {
	if n.bits == nil {
		return false
	}
	j := n.off + i
	return n.bits[j>>3]&(1<<(j&7)) == 0
}

// setNumber writes v[i] into an N or *N field.
func setNumber[N int32 | int64](v []N, ptr bool, off uintptr, nl nulls) func(int, unsafe.Pointer) {
	switch {
	case ptr:
		return func(i int, p unsafe.Pointer) {
			var x *N
			if !nl.at(i) {
				n := v[i]
				x = &n
			}
			*(**N)(unsafe.Add(p, off)) = x
		}
	case nl.bits == nil:
		return func(i int, p unsafe.Pointer) { *(*N)(unsafe.Add(p, off)) = v[i] }
	}
	return func(i int, p unsafe.Pointer) {
		var x N
		if !nl.at(i) {
			x = v[i]
		}
		*(*N)(unsafe.Add(p, off)) = x
	}
}

// stringsOf reads the string at row i of a string, binary or
// dictionary-encoded column (the caller checks NULL); nil for another type.
func stringsOf(a arrow.Array) func(int) string {
	switch a := a.(type) {
	case *array.Dictionary:
		dict := stringsOf(a.Dictionary())
		if dict == nil {
			return nil
		}
		return func(i int) string { return dict(a.GetValueIndex(i)) }
	case *array.String:
		return a.Value
	case *array.Binary:
		return func(i int) string { return string(a.Value(i)) }
	}
	return nil
}

// checkChunks refuses a file whose footer places a column chunk outside
// the file or claims an absurd size: the reader allocates each chunk's
// declared size before reading it.
func checkChunks(fr *file.Reader, f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	md := fr.MetaData()
	for rg := range md.NumRowGroups() {
		g := md.RowGroup(rg)
		if g.NumRows() < 0 {
			return fmt.Errorf("row group %d: %d rows", rg, g.NumRows())
		}
		for i := range g.NumColumns() {
			cc, err := g.ColumnChunk(i)
			if err != nil {
				return fmt.Errorf("row group %d column %d: %w", rg, i, err)
			}
			start := cc.DataPageOffset()
			if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && cc.DictionaryPageOffset() < start {
				start = cc.DictionaryPageOffset()
			}
			if err := recording.CheckChunk(rg, i, start, cc.TotalCompressedSize(), cc.TotalUncompressedSize(), st.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}
