package analyze

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/lockscope/lockscope/capture/recording"
)

// WriteTables writes the derived tables of a result as Parquet, for users
// who query many incidents with DuckDB or Spark: dir/incidents.parquet (one
// row per incident), dir/queue.parquet (queue depth per relation per
// sample) and dir/edges.parquet (every wait-for edge of every sample, with
// its kind). Files are created 0600: they hold query text.
func WriteTables(dir string, res *Result, mem memory.Allocator) error {
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write tables: %w", err)
	}
	for _, t := range []table{incidentsTable(res), queueTable(res), edgesTable(res)} {
		if err := writeTable(filepath.Join(dir, t.name+".parquet"), arrow.NewSchema(t.fields, nil), t.fill, mem); err != nil {
			return fmt.Errorf("write %s table: %w", t.name, err)
		}
	}
	return nil
}

// table is one derived table: its file's name, its columns, and what
// appends its rows.
type table struct {
	name   string
	fields []arrow.Field
	fill   func(b *array.RecordBuilder)
}

// utcMicros is the tables' timestamp type.
var utcMicros = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// incidentsTable has one row per incident.
func incidentsTable(res *Result) table {
	return table{"incidents", []arrow.Field{
		{Name: "cluster", Type: arrow.BinaryTypes.String}, {Name: "incident_id", Type: arrow.PrimitiveTypes.Int32},
		{Name: "kind", Type: arrow.BinaryTypes.String}, {Name: "start", Type: utcMicros}, {Name: "peak_at", Type: utcMicros},
		{Name: "end", Type: utcMicros, Nullable: true}, {Name: "duration_s", Type: arrow.PrimitiveTypes.Float64},
		{Name: "peak_waiters", Type: arrow.PrimitiveTypes.Int32}, {Name: "waiter_seconds", Type: arrow.PrimitiveTypes.Float64},
		{Name: "relations", Type: arrow.BinaryTypes.String}, {Name: "root_pids", Type: arrow.BinaryTypes.String},
		{Name: "ddl_pid", Type: arrow.PrimitiveTypes.Int32, Nullable: true}, {Name: "ddl_mode", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ddl_outcome", Type: arrow.BinaryTypes.String, Nullable: true}, {Name: "ddl_query", Type: arrow.BinaryTypes.String, Nullable: true},
	}, func(b *array.RecordBuilder) {
		for _, inc := range res.Incidents {
			r := row{b: b}
			r.str(res.Recording.Cluster)
			r.i32(int32(inc.ID))
			r.str(inc.Kind)
			r.ts(inc.Start)
			r.ts(inc.PeakAt)
			if inc.End != nil {
				r.ts(*inc.End)
			} else {
				r.nulls(1)
			}
			r.f64(inc.Duration)
			r.i32(int32(inc.PeakWaiters))
			r.f64(inc.WaiterSeconds)
			r.str(strings.Join(inc.Relations, ","))
			var roots []string
			for _, rb := range inc.RootBlockers {
				roots = append(roots, fmt.Sprint(rb.PID))
			}
			r.str(strings.Join(roots, ","))
			if d := inc.DDL; d != nil {
				r.i32(d.PID)
				r.str(d.Mode)
				r.str(d.Outcome)
				r.str(d.Query)
			} else {
				r.nulls(4)
			}
		}
	}}
}

// queueTable has the queue depth per relation per sample.
func queueTable(res *Result) table {
	return table{"queue", []arrow.Field{
		{Name: "incident_id", Type: arrow.PrimitiveTypes.Int32}, {Name: "ts", Type: utcMicros},
		{Name: "relation", Type: arrow.BinaryTypes.String}, {Name: "depth", Type: arrow.PrimitiveTypes.Int32},
		{Name: "head_pid", Type: arrow.PrimitiveTypes.Int32}, {Name: "head_mode", Type: arrow.BinaryTypes.String},
		{Name: "rate", Type: arrow.PrimitiveTypes.Float64}, {Name: "rate_smoothed", Type: arrow.PrimitiveTypes.Float64},
	}, perIncident(res, func(inc *Incident) []QueuePoint { return inc.Queue }, func(r *row, q QueuePoint) {
		r.ts(q.TS)
		r.str(q.Relation)
		r.i32(int32(q.Depth))
		r.i32(q.Head)
		r.str(q.HeadMode)
		r.f64(q.Rate)
		r.f64(q.RateSmoothed)
	})}
}

// edgesTable has every wait-for edge of every sample, with its kind.
func edgesTable(res *Result) table {
	return table{"edges", []arrow.Field{
		{Name: "incident_id", Type: arrow.PrimitiveTypes.Int32}, {Name: "ts", Type: utcMicros},
		{Name: "waiter_pid", Type: arrow.PrimitiveTypes.Int32}, {Name: "waiter_backend_start", Type: utcMicros},
		{Name: "blocker_pid", Type: arrow.PrimitiveTypes.Int32}, {Name: "blocker_backend_start", Type: utcMicros},
		{Name: "kind", Type: arrow.BinaryTypes.String}, {Name: "observed", Type: arrow.FixedWidthTypes.Boolean},
	}, perIncident(res, func(inc *Incident) []EdgeRecord { return inc.EdgeLog }, func(r *row, e EdgeRecord) {
		r.ts(e.TS)
		r.i32(e.WaiterPID)
		r.ts(e.WaiterStart)
		r.i32(e.BlockerPID)
		r.ts(e.BlockerStart)
		r.str(e.Kind)
		r.bool(e.Observed)
	})}
}

// perIncident fills a table of the items each incident holds (its queue
// points, its edges): a row per item, the incident's id first, then the
// columns add appends.
func perIncident[T any](res *Result, items func(*Incident) []T, add func(*row, T)) func(*array.RecordBuilder) {
	return func(b *array.RecordBuilder) {
		for i := range res.Incidents {
			inc := &res.Incidents[i]
			for _, x := range items(inc) {
				r := row{b: b}
				r.i32(int32(inc.ID))
				add(&r, x)
			}
		}
	}
}

func writeTable(path string, schema *arrow.Schema, fill func(*array.RecordBuilder), mem memory.Allocator) error {
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	fill(b)
	rec := b.NewRecordBatch()
	defer rec.Release()
	return recording.WriteAtomic(path, func(f io.Writer) error {
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithAllocator(mem))
		w, err := pqarrow.NewFileWriter(schema, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(mem)))
		if err != nil {
			return err
		}
		return errors.Join(w.Write(rec), w.Close())
	})
}

// row appends one row to a record builder, a column at a time in the
// schema's order.
type row struct {
	b   *array.RecordBuilder
	col int
}

func (r *row) next() array.Builder {
	f := r.b.Field(r.col)
	r.col++
	return f
}

func (r *row) str(v string)  { r.next().(*array.StringBuilder).Append(v) }
func (r *row) i32(v int32)   { r.next().(*array.Int32Builder).Append(v) }
func (r *row) f64(v float64) { r.next().(*array.Float64Builder).Append(v) }
func (r *row) bool(v bool)   { r.next().(*array.BooleanBuilder).Append(v) }
func (r *row) ts(t time.Time) {
	r.next().(*array.TimestampBuilder).Append(arrow.Timestamp(t.UnixMicro()))
}

// nulls appends a null to each of the next n columns.
func (r *row) nulls(n int) {
	for range n {
		r.next().AppendNull()
	}
}
