package analyze

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/lockscope/lockscope/capture/recording"
)

// ReadTableFile reads the table file at path through the cursor Run reads
// with, first as a locks table and then as an activity table, at most
// maxRows rows each, and drops the rows: FuzzReadTable's target, for the
// fuzz test outside the package.
func ReadTableFile(ctx context.Context, mem memory.Allocator, path string, maxRows int) {
	locks := newCursor(ctx, mem, []string{path}, convLock)
	var l recording.Lock
	for n := 0; locks.peek(&l) && n < maxRows; n++ {
		locks.skip()
	}
	locks.close()
	activity := newCursor(ctx, mem, []string{path}, convActivity)
	var a recording.Activity
	for n := 0; activity.peek(&a) && n < maxRows; n++ {
		activity.skip()
	}
	activity.close()
}
