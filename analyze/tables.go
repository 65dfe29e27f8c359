package analyze

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

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
	ts := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	tables := []struct {
		name   string
		fields []arrow.Field
		fill   func(b *array.RecordBuilder)
	}{
		{"incidents", []arrow.Field{
			{Name: "cluster", Type: arrow.BinaryTypes.String}, {Name: "incident_id", Type: arrow.PrimitiveTypes.Int32},
			{Name: "kind", Type: arrow.BinaryTypes.String}, {Name: "start", Type: ts}, {Name: "peak_at", Type: ts},
			{Name: "end", Type: ts, Nullable: true}, {Name: "duration_s", Type: arrow.PrimitiveTypes.Float64},
			{Name: "peak_waiters", Type: arrow.PrimitiveTypes.Int32}, {Name: "waiter_seconds", Type: arrow.PrimitiveTypes.Float64},
			{Name: "relations", Type: arrow.BinaryTypes.String}, {Name: "root_pids", Type: arrow.BinaryTypes.String},
			{Name: "ddl_pid", Type: arrow.PrimitiveTypes.Int32, Nullable: true}, {Name: "ddl_mode", Type: arrow.BinaryTypes.String, Nullable: true},
			{Name: "ddl_outcome", Type: arrow.BinaryTypes.String, Nullable: true}, {Name: "ddl_query", Type: arrow.BinaryTypes.String, Nullable: true},
		}, func(b *array.RecordBuilder) {
			for _, inc := range res.Incidents {
				b.Field(0).(*array.StringBuilder).Append(res.Recording.Cluster)
				b.Field(1).(*array.Int32Builder).Append(int32(inc.ID))
				b.Field(2).(*array.StringBuilder).Append(inc.Kind)
				b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(inc.Start.UnixMicro()))
				b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(inc.PeakAt.UnixMicro()))
				if inc.End != nil {
					b.Field(5).(*array.TimestampBuilder).Append(arrow.Timestamp(inc.End.UnixMicro()))
				} else {
					b.Field(5).AppendNull()
				}
				b.Field(6).(*array.Float64Builder).Append(inc.Duration)
				b.Field(7).(*array.Int32Builder).Append(int32(inc.PeakWaiters))
				b.Field(8).(*array.Float64Builder).Append(inc.WaiterSeconds)
				b.Field(9).(*array.StringBuilder).Append(strings.Join(inc.Relations, ","))
				var roots []string
				for _, r := range inc.RootBlockers {
					roots = append(roots, fmt.Sprint(r.PID))
				}
				b.Field(10).(*array.StringBuilder).Append(strings.Join(roots, ","))
				if d := inc.DDL; d != nil {
					b.Field(11).(*array.Int32Builder).Append(d.PID)
					b.Field(12).(*array.StringBuilder).Append(d.Mode)
					b.Field(13).(*array.StringBuilder).Append(d.Outcome)
					b.Field(14).(*array.StringBuilder).Append(d.Query)
				} else {
					for f := 11; f <= 14; f++ {
						b.Field(f).AppendNull()
					}
				}
			}
		}},
		{"queue", []arrow.Field{
			{Name: "incident_id", Type: arrow.PrimitiveTypes.Int32}, {Name: "ts", Type: ts},
			{Name: "relation", Type: arrow.BinaryTypes.String}, {Name: "depth", Type: arrow.PrimitiveTypes.Int32},
			{Name: "head_pid", Type: arrow.PrimitiveTypes.Int32}, {Name: "head_mode", Type: arrow.BinaryTypes.String},
			{Name: "rate", Type: arrow.PrimitiveTypes.Float64}, {Name: "rate_smoothed", Type: arrow.PrimitiveTypes.Float64},
		}, func(b *array.RecordBuilder) {
			for _, inc := range res.Incidents {
				for _, q := range inc.Queue {
					b.Field(0).(*array.Int32Builder).Append(int32(inc.ID))
					b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(q.TS.UnixMicro()))
					b.Field(2).(*array.StringBuilder).Append(q.Relation)
					b.Field(3).(*array.Int32Builder).Append(int32(q.Depth))
					b.Field(4).(*array.Int32Builder).Append(q.Head)
					b.Field(5).(*array.StringBuilder).Append(q.HeadMode)
					b.Field(6).(*array.Float64Builder).Append(q.Rate)
					b.Field(7).(*array.Float64Builder).Append(q.RateSmoothed)
				}
			}
		}},
		{"edges", []arrow.Field{
			{Name: "incident_id", Type: arrow.PrimitiveTypes.Int32}, {Name: "ts", Type: ts},
			{Name: "waiter_pid", Type: arrow.PrimitiveTypes.Int32}, {Name: "waiter_backend_start", Type: ts},
			{Name: "blocker_pid", Type: arrow.PrimitiveTypes.Int32}, {Name: "blocker_backend_start", Type: ts},
			{Name: "kind", Type: arrow.BinaryTypes.String}, {Name: "observed", Type: arrow.FixedWidthTypes.Boolean},
		}, func(b *array.RecordBuilder) {
			for _, inc := range res.Incidents {
				for _, e := range inc.EdgeLog {
					b.Field(0).(*array.Int32Builder).Append(int32(inc.ID))
					b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(e.TS.UnixMicro()))
					b.Field(2).(*array.Int32Builder).Append(e.WaiterPID)
					b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(e.WaiterStart.UnixMicro()))
					b.Field(4).(*array.Int32Builder).Append(e.BlockerPID)
					b.Field(5).(*array.TimestampBuilder).Append(arrow.Timestamp(e.BlockerStart.UnixMicro()))
					b.Field(6).(*array.StringBuilder).Append(e.Kind)
					b.Field(7).(*array.BooleanBuilder).Append(e.Observed)
				}
			}
		}},
	}
	for _, t := range tables {
		if err := writeTable(filepath.Join(dir, t.name+".parquet"), arrow.NewSchema(t.fields, nil), t.fill, mem); err != nil {
			return fmt.Errorf("write %s table: %w", t.name, err)
		}
	}
	return nil
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
