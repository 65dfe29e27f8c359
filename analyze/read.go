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
	conv  func(cols columns, i int, out *T)

	next int // index of the next file to open
	f    *os.File
	fr   *file.Reader
	rr   pqarrow.RecordReader
	rec  arrow.RecordBatch
	cols columns
	row  int
	err  error
}

func newCursor[T any](ctx context.Context, mem memory.Allocator, files []string, conv func(columns, int, *T)) *cursor[T] {
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
	c.conv(c.cols, c.row, out)
	return true
}

// skip consumes the current row.
func (c *cursor[T]) skip() { c.row++ }

func (c *cursor[T]) advance() bool {
	if c.err != nil {
		return false
	}
	if c.rec != nil {
		c.rec.Release()
		c.rec = nil
	}
	for {
		if c.rr != nil && c.rr.Next() {
			c.rec = c.rr.RecordBatch()
			c.rec.Retain()
			c.cols = columnsOf(c.rec)
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
	pr, err := pqarrow.NewFileReader(fr, pqarrow.ArrowReadProperties{BatchSize: batchSize}, c.mem)
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

func (c columns) int64(name string, i int) int64 {
	switch a := c[name].(type) {
	case *array.Int64:
		if a.IsNull(i) {
			return 0
		}
		return a.Value(i)
	case *array.Int32:
		if a.IsNull(i) {
			return 0
		}
		return int64(a.Value(i))
	case *array.Timestamp:
		if a.IsNull(i) {
			return 0
		}
		return int64(a.Value(i))
	}
	return 0
}

func (c columns) int32(name string, i int) int32 { return int32(c.int64(name, i)) }

func (c columns) null(name string, i int) bool {
	a, ok := c[name]
	return !ok || a.IsNull(i)
}

func (c columns) int64p(name string, i int) *int64 {
	if c.null(name, i) {
		return nil
	}
	v := c.int64(name, i)
	return &v
}

func (c columns) int32p(name string, i int) *int32 {
	if c.null(name, i) {
		return nil
	}
	v := c.int32(name, i)
	return &v
}

func (c columns) str(name string, i int) string {
	switch a := c[name].(type) {
	case *array.String:
		if a.IsNull(i) {
			return ""
		}
		return a.Value(i)
	case *array.Binary:
		if a.IsNull(i) {
			return ""
		}
		return string(a.Value(i))
	}
	return ""
}

func (c columns) boolean(name string, i int) bool {
	if a, ok := c[name].(*array.Boolean); ok && !a.IsNull(i) {
		return a.Value(i)
	}
	return false
}

func convTick(c columns, i int, t *recording.Tick) {
	*t = recording.Tick{
		SampleID: c.int64("sample_id", i), TS: c.int64("ts", i), ClientTS: c.int64("client_ts", i),
		Kind: c.str("kind", i), Mode: c.str("mode", i), LockWaiters: c.int32("lock_waiters", i),
		ActivityRows: c.int32("activity_rows", i), LockRows: c.int32("lock_rows", i), EdgeRows: c.int32("edge_rows", i),
		QueryMicros: c.int64("query_us", i), ServerMicros: c.int64("server_cpu_us", i),
		ClientMicros: c.int64("client_cpu_us", i), CapturePID: c.int32("capture_pid", i),
	}
}

func convActivity(c columns, i int, a *recording.Activity) {
	*a = recording.Activity{
		SampleID: c.int64("sample_id", i), TS: c.int64("ts", i), DatID: c.int64("datid", i), DatName: c.str("datname", i),
		PID: c.int32("pid", i), LeaderPID: c.int32("leader_pid", i), UseSysID: c.int64("usesysid", i),
		UseName: c.str("usename", i), ApplicationName: c.str("application_name", i), ClientAddr: c.str("client_addr", i),
		ClientHostname: c.str("client_hostname", i), ClientPort: c.int32("client_port", i),
		BackendStart: c.int64("backend_start", i), XactStart: c.int64("xact_start", i), QueryStart: c.int64("query_start", i),
		StateChange: c.int64("state_change", i), WaitEventType: c.str("wait_event_type", i), WaitEvent: c.str("wait_event", i),
		State: c.str("state", i), BackendXID: c.int64("backend_xid", i), BackendXmin: c.int64("backend_xmin", i),
		QueryID: c.int64("query_id", i), Query: c.str("query", i), BackendType: c.str("backend_type", i),
	}
}

func convLock(c columns, i int, l *recording.Lock) {
	*l = recording.Lock{
		SampleID: c.int64("sample_id", i), TS: c.int64("ts", i), LockType: c.str("locktype", i),
		Database: c.int64p("database", i), Relation: c.int64("relation", i), Page: c.int32p("page", i),
		Tuple: c.int32("tuple", i), VirtualXID: c.str("virtualxid", i), TransactionID: c.int64("transactionid", i),
		ClassID: c.int64p("classid", i), ObjID: c.int64p("objid", i), ObjSubID: c.int32p("objsubid", i),
		VirtualTransaction: c.str("virtualtransaction", i), PID: c.int32("pid", i), Mode: c.str("mode", i),
		Granted: c.boolean("granted", i), FastPath: c.boolean("fastpath", i), WaitStart: c.int64("waitstart", i),
	}
}

func convEdge(c columns, i int, e *recording.Edge) {
	*e = recording.Edge{SampleID: c.int64("sample_id", i), TS: c.int64("ts", i), PID: c.int32("pid", i),
		BackendStart: c.int64("backend_start", i), BlockingPID: c.int32("blocking_pid", i)}
}

func convRelation(c columns, i int, r *recording.Relation) {
	*r = recording.Relation{SampleID: c.int64("sample_id", i), Database: c.int64("database", i), Relation: c.int64("relation", i),
		Schema: c.str("nspname", i), Name: c.str("relname", i), Kind: c.str("relkind", i)}
}

func convEvent(c columns, i int, e *recording.Event) {
	*e = recording.Event{TS: c.int64("ts", i), Kind: c.str("kind", i), Message: c.str("message", i),
		GapStart: c.int64("gap_start", i), GapEnd: c.int64("gap_end", i), CapturePID: c.int32("capture_pid", i)}
}

func convOdooModule(c columns, i int, m *recording.OdooModule) {
	*m = recording.OdooModule{SampleID: c.int64("sample_id", i), TS: c.int64("ts", i), Name: c.str("name", i), State: c.str("state", i)}
}

func convPgBouncerServer(c columns, i int, s *recording.PgBouncerServer) {
	*s = recording.PgBouncerServer{SampleID: c.int64("sample_id", i), TS: c.int64("ts", i), Type: c.str("type", i),
		User: c.str("user", i), Database: c.str("database", i), State: c.str("state", i), Addr: c.str("addr", i),
		Port: c.int32("port", i), RemotePID: c.int32("remote_pid", i), ApplicationName: c.str("application_name", i)}
}
