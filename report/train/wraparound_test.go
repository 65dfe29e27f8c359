package train_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lockscope/lockscope/fixtures/scenario"
	"github.com/lockscope/lockscope/report/train"
)

// An anti-wraparound autovacuum as the root must not be touched: the
// drill's hands-off answer is the autovacuum, the first session to act on
// is the waiting ALTER (the change gives way), Step 3 is roll back, and
// the debrief says what happened to that ALTER, not to a blocker.
func TestTrainWraparoundAutovacuumIsHandsOff(t *testing.T) {
	dir := fixtureRecording("wraparound-vacuum")
	data, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var truth scenario.Truth
	if err := json.Unmarshal(data, &truth); err != nil {
		t.Fatal(err)
	}
	d := newDrill(t, dir)
	want := map[string]string{
		train.KindHandsOff: fmt.Sprint(truth.Root.PID),
		train.KindFirstPID: fmt.Sprint(truth.DDL.PID),
		train.KindAction:   "cancel",
		train.KindPath:     "roll back",
	}
	for _, q := range d.Questions {
		if w, ok := want[q.Kind]; ok && q.Answer != w {
			t.Errorf("%s: answer %q (%s), want %q", q.Kind, q.Answer, q.Evidence, w)
		}
	}
	debrief := d.Debrief(train.Score{})
	if want := fmt.Sprintf("cancel pid %d at", truth.DDL.PID); !strings.Contains(debrief, want) || !strings.Contains(debrief, "In the recording it was cancelled at") {
		t.Errorf("debrief's containment does not tell the ALTER's cancel:\n%s", debrief)
	}
}
