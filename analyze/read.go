package analyze

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

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
	conv  func(columns) func(int, *T)
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

func newCursor[T any](ctx context.Context, mem memory.Allocator, files []string, conv func(columns) func(int, *T)) *cursor[T] {
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
			c.err = fmt.Errorf("read %s: damaged file: %v", c.files[max(c.next-1, 0)], p)
			ok = false
		}
	}()
	c.row1(c.row, out)
	return true
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
			name := "recording"
			if c.next > 0 {
				name = c.files[c.next-1]
			}
			c.err = fmt.Errorf("read %s: damaged file: %v", name, p)
			ok = false
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
			c.row1 = c.conv(c.cols)
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
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("read %s: damaged file: %v", path, p)
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read recording: %w", err)
	}
	props := parquet.NewReaderProperties(c.mem)
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

// The getters below resolve a column once per record batch and return a
// function reading row i: per row there is no lookup by name and no type
// switch. A missing column reads as NULL.
func (c columns) int64At(name string) func(int) int64 {
	switch a := c[name].(type) {
	case *array.Int64:
		v := a.Int64Values()
		return func(i int) int64 {
			if a.IsNull(i) {
				return 0
			}
			return v[i]
		}
	case *array.Int32:
		v := a.Int32Values()
		return func(i int) int64 {
			if a.IsNull(i) {
				return 0
			}
			return int64(v[i])
		}
	case *array.Timestamp:
		v := a.TimestampValues()
		return func(i int) int64 {
			if a.IsNull(i) {
				return 0
			}
			return int64(v[i])
		}
	}
	return func(int) int64 { return 0 }
}

func (c columns) int32At(name string) func(int) int32 {
	f := c.int64At(name)
	return func(i int) int32 { return int32(f(i)) }
}

func (c columns) nullAt(name string) func(int) bool {
	a, ok := c[name]
	if !ok {
		return func(int) bool { return true }
	}
	if a.NullN() == 0 {
		return func(int) bool { return false }
	}
	return a.IsNull
}

func (c columns) int64pAt(name string) func(int) *int64 {
	null, f := c.nullAt(name), c.int64At(name)
	return func(i int) *int64 {
		if null(i) {
			return nil
		}
		v := f(i)
		return &v
	}
}

func (c columns) int32pAt(name string) func(int) *int32 {
	null, f := c.nullAt(name), c.int32At(name)
	return func(i int) *int32 {
		if null(i) {
			return nil
		}
		v := f(i)
		return &v
	}
}

func (c columns) strAt(name string) func(int) string {
	switch a := c[name].(type) {
	case *array.Dictionary:
		dict := columns{"d": a.Dictionary()}.strAt("d")
		return func(i int) string {
			if a.IsNull(i) {
				return ""
			}
			return dict(a.GetValueIndex(i))
		}
	case *array.String:
		return func(i int) string {
			if a.IsNull(i) {
				return ""
			}
			return a.Value(i)
		}
	case *array.Binary:
		return func(i int) string {
			if a.IsNull(i) {
				return ""
			}
			return string(a.Value(i))
		}
	}
	return func(int) string { return "" }
}

func (c columns) booleanAt(name string) func(int) bool {
	if a, ok := c[name].(*array.Boolean); ok {
		return func(i int) bool { return !a.IsNull(i) && a.Value(i) }
	}
	return func(int) bool { return false }
}

func convTick(c columns) func(int, *recording.Tick) {
	cSampleId := c.int64At("sample_id")
	cTs := c.int64At("ts")
	cClientTs := c.int64At("client_ts")
	cKind := c.strAt("kind")
	cMode := c.strAt("mode")
	cLockWaiters := c.int32At("lock_waiters")
	cActivityRows := c.int32At("activity_rows")
	cLockRows := c.int32At("lock_rows")
	cEdgeRows := c.int32At("edge_rows")
	cQueryUs := c.int64At("query_us")
	cServerCpuUs := c.int64At("server_cpu_us")
	cClientCpuUs := c.int64At("client_cpu_us")
	cCapturePid := c.int32At("capture_pid")
	return func(i int, t *recording.Tick) {
		*t = recording.Tick{
			SampleID: cSampleId(i), TS: cTs(i), ClientTS: cClientTs(i),
			Kind: cKind(i), Mode: cMode(i), LockWaiters: cLockWaiters(i),
			ActivityRows: cActivityRows(i), LockRows: cLockRows(i), EdgeRows: cEdgeRows(i),
			QueryMicros: cQueryUs(i), ServerMicros: cServerCpuUs(i),
			ClientMicros: cClientCpuUs(i), CapturePID: cCapturePid(i),
		}
	}
}

func convActivity(c columns) func(int, *recording.Activity) {
	cSampleId := c.int64At("sample_id")
	cTs := c.int64At("ts")
	cDatid := c.int64At("datid")
	cDatname := c.strAt("datname")
	cPid := c.int32At("pid")
	cLeaderPid := c.int32At("leader_pid")
	cUsesysid := c.int64At("usesysid")
	cUsename := c.strAt("usename")
	cApplicationName := c.strAt("application_name")
	cClientAddr := c.strAt("client_addr")
	cClientHostname := c.strAt("client_hostname")
	cClientPort := c.int32At("client_port")
	cBackendStart := c.int64At("backend_start")
	cXactStart := c.int64At("xact_start")
	cQueryStart := c.int64At("query_start")
	cStateChange := c.int64At("state_change")
	cWaitEventType := c.strAt("wait_event_type")
	cWaitEvent := c.strAt("wait_event")
	cState := c.strAt("state")
	cBackendXid := c.int64At("backend_xid")
	cBackendXmin := c.int64At("backend_xmin")
	cQueryId := c.int64At("query_id")
	cQuery := c.strAt("query")
	cBackendType := c.strAt("backend_type")
	return func(i int, a *recording.Activity) {
		*a = recording.Activity{
			SampleID: cSampleId(i), TS: cTs(i), DatID: cDatid(i), DatName: cDatname(i),
			PID: cPid(i), LeaderPID: cLeaderPid(i), UseSysID: cUsesysid(i),
			UseName: cUsename(i), ApplicationName: cApplicationName(i), ClientAddr: cClientAddr(i),
			ClientHostname: cClientHostname(i), ClientPort: cClientPort(i),
			BackendStart: cBackendStart(i), XactStart: cXactStart(i), QueryStart: cQueryStart(i),
			StateChange: cStateChange(i), WaitEventType: cWaitEventType(i), WaitEvent: cWaitEvent(i),
			State: cState(i), BackendXID: cBackendXid(i), BackendXmin: cBackendXmin(i),
			QueryID: cQueryId(i), Query: cQuery(i), BackendType: cBackendType(i),
		}
	}
}

func convLock(c columns) func(int, *recording.Lock) {
	cSampleId := c.int64At("sample_id")
	cTs := c.int64At("ts")
	cLocktype := c.strAt("locktype")
	cDatabaseP := c.int64pAt("database")
	cRelation := c.int64At("relation")
	cPageP := c.int32pAt("page")
	cTuple := c.int32At("tuple")
	cVirtualxid := c.strAt("virtualxid")
	cTransactionid := c.int64At("transactionid")
	cClassidP := c.int64pAt("classid")
	cObjidP := c.int64pAt("objid")
	cObjsubidP := c.int32pAt("objsubid")
	cVirtualtransaction := c.strAt("virtualtransaction")
	cPid := c.int32At("pid")
	cMode := c.strAt("mode")
	cGranted := c.booleanAt("granted")
	cFastpath := c.booleanAt("fastpath")
	cWaitstart := c.int64At("waitstart")
	return func(i int, l *recording.Lock) {
		*l = recording.Lock{
			SampleID: cSampleId(i), TS: cTs(i), LockType: cLocktype(i),
			Database: cDatabaseP(i), Relation: cRelation(i), Page: cPageP(i),
			Tuple: cTuple(i), VirtualXID: cVirtualxid(i), TransactionID: cTransactionid(i),
			ClassID: cClassidP(i), ObjID: cObjidP(i), ObjSubID: cObjsubidP(i),
			VirtualTransaction: cVirtualtransaction(i), PID: cPid(i), Mode: cMode(i),
			Granted: cGranted(i), FastPath: cFastpath(i), WaitStart: cWaitstart(i),
		}
	}
}

func convEdge(c columns) func(int, *recording.Edge) {
	cSampleId := c.int64At("sample_id")
	cTs := c.int64At("ts")
	cPid := c.int32At("pid")
	cBackendStart := c.int64At("backend_start")
	cBlockingPid := c.int32At("blocking_pid")
	return func(i int, e *recording.Edge) {
		*e = recording.Edge{SampleID: cSampleId(i), TS: cTs(i), PID: cPid(i),
			BackendStart: cBackendStart(i), BlockingPID: cBlockingPid(i)}
	}
}

func convRelation(c columns) func(int, *recording.Relation) {
	cSampleId := c.int64At("sample_id")
	cDatabase := c.int64At("database")
	cRelation := c.int64At("relation")
	cNspname := c.strAt("nspname")
	cRelname := c.strAt("relname")
	cRelkind := c.strAt("relkind")
	return func(i int, r *recording.Relation) {
		*r = recording.Relation{SampleID: cSampleId(i), Database: cDatabase(i), Relation: cRelation(i),
			Schema: cNspname(i), Name: cRelname(i), Kind: cRelkind(i)}
	}
}

func convEvent(c columns) func(int, *recording.Event) {
	cTs := c.int64At("ts")
	cKind := c.strAt("kind")
	cMessage := c.strAt("message")
	cGapStart := c.int64At("gap_start")
	cGapEnd := c.int64At("gap_end")
	cCapturePid := c.int32At("capture_pid")
	return func(i int, e *recording.Event) {
		*e = recording.Event{TS: cTs(i), Kind: cKind(i), Message: cMessage(i),
			GapStart: cGapStart(i), GapEnd: cGapEnd(i), CapturePID: cCapturePid(i)}
	}
}

func convOdooModule(c columns) func(int, *recording.OdooModule) {
	cSampleId := c.int64At("sample_id")
	cTs := c.int64At("ts")
	cName := c.strAt("name")
	cState := c.strAt("state")
	return func(i int, m *recording.OdooModule) {
		*m = recording.OdooModule{SampleID: cSampleId(i), TS: cTs(i), Name: cName(i), State: cState(i)}
	}
}

func convPreparedXact(c columns) func(int, *recording.PreparedXact) {
	cSampleId := c.int64At("sample_id")
	cTs := c.int64At("ts")
	cTransaction := c.int64At("transaction")
	cGid := c.strAt("gid")
	cPrepared := c.int64At("prepared")
	cOwner := c.strAt("owner")
	cDatabase := c.strAt("database")
	return func(i int, p *recording.PreparedXact) {
		*p = recording.PreparedXact{SampleID: cSampleId(i), TS: cTs(i), Transaction: cTransaction(i),
			GID: cGid(i), Prepared: cPrepared(i), Owner: cOwner(i), Database: cDatabase(i)}
	}
}

func convPgBouncerServer(c columns) func(int, *recording.PgBouncerServer) {
	cSampleId := c.int64At("sample_id")
	cTs := c.int64At("ts")
	cType := c.strAt("type")
	cUser := c.strAt("user")
	cDatabase := c.strAt("database")
	cState := c.strAt("state")
	cAddr := c.strAt("addr")
	cPort := c.int32At("port")
	cRemotePid := c.int32At("remote_pid")
	cApplicationName := c.strAt("application_name")
	return func(i int, s *recording.PgBouncerServer) {
		*s = recording.PgBouncerServer{SampleID: cSampleId(i), TS: cTs(i), Type: cType(i),
			User: cUser(i), Database: cDatabase(i), State: cState(i), Addr: cAddr(i),
			Port: cPort(i), RemotePID: cRemotePid(i), ApplicationName: cApplicationName(i)}
	}
}

// maxChunkBytes bounds a column chunk's declared uncompressed size: the
// recorder's segments rotate at 64 MiB of journal, so a chunk claiming
// more is damage, and reading it would allocate what it claims.
const maxChunkBytes = 1 << 30

// checkChunks refuses a file whose footer places a column chunk outside
// the file or claims an absurd size: the reader allocates each chunk's
// declared size before reading it.
func checkChunks(fr *file.Reader, f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
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
			n, raw := cc.TotalCompressedSize(), cc.TotalUncompressedSize()
			if start < 0 || n < 0 || start > size || n > size-start || raw < 0 || raw > maxChunkBytes {
				return fmt.Errorf("row group %d column %d: a chunk of %d bytes (%d uncompressed) at offset %d in a file of %d bytes", rg, i, n, raw, start, size)
			}
		}
	}
	return nil
}
