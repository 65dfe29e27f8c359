package train

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Record is one drill a trainee took, one JSON line in the history.
type Record struct {
	Trainee string    `json:"trainee"`
	At      time.Time `json:"at"`
	// Kind is lab (a live drill) or recording (train on a recording);
	// Drill the scenario or the recording's directory.
	Kind  string `json:"kind"`
	Drill string `json:"drill"`
	Seed  uint64 `json:"seed,omitempty"`
	// Points are out of 100.
	Points int `json:"points"`
	// Missed are the runbook steps the trainee lost points on.
	Missed []string `json:"missed,omitempty"`
}

// Kinds of drill.
const (
	DrillLab       = "lab"
	DrillRecording = "recording"
)

var traineeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidTrainee checks a trainee's name, which names their history file.
func ValidTrainee(name string) error {
	if !traineeName.MatchString(name) {
		return fmt.Errorf("trainee %q: use letters, digits, '.', '_' and '-' (up to 64), starting with a letter or digit", name)
	}
	return nil
}

// AppendHistory adds a record to the trainee's history in dir
// (<dir>/<trainee>.jsonl, created 0600 in a 0700 directory).
func AppendHistory(dir string, r Record) error {
	if err := ValidTrainee(r.Trainee); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("history directory: %w", err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, r.Trainee+".jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("history: %w", err)
	}
	return f.Close()
}

// LoadHistory reads every trainee's history in dir, in file then line
// order. A line that is not a record is an error naming the file and line.
func LoadHistory(dir string) ([]Record, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	slices.Sort(files)
	var out []Record
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for n := 1; sc.Scan(); n++ {
			if strings.TrimSpace(sc.Text()) == "" {
				continue
			}
			var r Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Trainee == "" {
				f.Close()
				return nil, fmt.Errorf("history %s line %d: not a drill record (%v): remove or fix the line", name, n, err)
			}
			out = append(out, r)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("history %s: %w", name, err)
		}
	}
	return out, nil
}

// Curriculum is a trainer's ordered list of drills, each with a pass mark.
type Curriculum struct {
	Drills []Step `json:"drills"`
}

// Step is one drill of a curriculum: a lab scenario or a recording.
type Step struct {
	Lab       string `json:"lab,omitempty"`
	Recording string `json:"recording,omitempty"`
	// Pass is the points (of 100) that pass the drill.
	Pass int `json:"pass"`
}

// Name is the drill as history records it.
func (s Step) Name() (kind, drill string) {
	if s.Lab != "" {
		return DrillLab, s.Lab
	}
	return DrillRecording, s.Recording
}

// ErrCurriculum marks a curriculum file that cannot be used.
var ErrCurriculum = errors.New("bad curriculum")

// LoadCurriculum reads a curriculum file (JSON: {"drills": [{"lab":
// "idle-cron", "pass": 80}, {"recording": "fixtures/chain/recording",
// "pass": 80}]}). Recording paths are relative to the file.
func LoadCurriculum(path string) (*Curriculum, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCurriculum, err)
	}
	var c Curriculum
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v (want {\"drills\": [{\"lab\": \"idle-cron\", \"pass\": 80}, …]})", ErrCurriculum, path, err)
	}
	if len(c.Drills) == 0 {
		return nil, fmt.Errorf("%w: %s lists no drills", ErrCurriculum, path)
	}
	for i := range c.Drills {
		s := &c.Drills[i]
		if (s.Lab == "") == (s.Recording == "") {
			return nil, fmt.Errorf("%w: %s drill %d: name either a lab scenario or a recording", ErrCurriculum, path, i+1)
		}
		if s.Pass < 1 || s.Pass > 100 {
			return nil, fmt.Errorf("%w: %s drill %d: pass mark %d, want 1 to 100", ErrCurriculum, path, i+1, s.Pass)
		}
		if s.Recording != "" && !filepath.IsAbs(s.Recording) {
			s.Recording = filepath.Join(filepath.Dir(path), s.Recording)
		}
	}
	return &c, nil
}

// sameDrill compares a record with a curriculum step; recordings compare
// by absolute path.
func sameDrill(r Record, s Step) bool {
	kind, drill := s.Name()
	if r.Kind != kind {
		return false
	}
	if kind == DrillRecording {
		a, _ := filepath.Abs(r.Drill)
		b, _ := filepath.Abs(drill)
		return a == b
	}
	return r.Drill == drill
}

// Next is the trainee's first curriculum drill not yet passed (ok false
// when all are).
func (c *Curriculum) Next(records []Record, trainee string) (Step, bool) {
	for _, s := range c.Drills {
		if !slices.ContainsFunc(records, func(r Record) bool { return r.Trainee == trainee && sameDrill(r, s) && r.Points >= s.Pass }) {
			return s, true
		}
	}
	return Step{}, false
}

// Summarize writes each trainee's progress: with a curriculum, each drill
// in order with attempts, best and last score and whether it is passed,
// and the next drill due; without one, every drill taken. Then the runbook
// steps the trainee most often lost points on.
func Summarize(w io.Writer, records []Record, c *Curriculum) error {
	var trainees []string
	for _, r := range records {
		if !slices.Contains(trainees, r.Trainee) {
			trainees = append(trainees, r.Trainee)
		}
	}
	slices.Sort(trainees)
	var b strings.Builder
	if len(trainees) == 0 {
		b.WriteString("No drills recorded yet.\n")
	}
	for _, t := range trainees {
		summarizeTrainee(&b, t, records, c)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// summarizeTrainee writes one trainee's drills, in the curriculum's order
// with the next one due or, without a curriculum, in the order first
// taken; then the steps they lost points on.
func summarizeTrainee(b *strings.Builder, trainee string, records []Record, c *Curriculum) {
	var mine []Record
	for _, r := range records {
		if r.Trainee == trainee {
			mine = append(mine, r)
		}
	}
	slices.SortStableFunc(mine, func(a, b Record) int { return a.At.Compare(b.At) })
	fmt.Fprintf(b, "%s: %d drill(s), the last on %s UTC\n", trainee, len(mine), mine[len(mine)-1].At.UTC().Format("2006-01-02 15:04"))
	if c != nil {
		for _, s := range c.Drills {
			kind, drill := s.Name()
			drillLine(b, kind+" "+drill, slices.DeleteFunc(slices.Clone(mine), func(r Record) bool { return !sameDrill(r, s) }), s.Pass)
		}
		if next, ok := c.Next(records, trainee); ok {
			kind, drill := next.Name()
			fmt.Fprintf(b, "  next: %s %s\n", kind, drill)
		} else {
			b.WriteString("  every drill of the curriculum passed\n")
		}
	} else {
		var drills []string
		for _, r := range mine {
			if k := r.Kind + " " + r.Drill; !slices.Contains(drills, k) {
				drills = append(drills, k)
			}
		}
		for _, d := range drills {
			drillLine(b, d, slices.DeleteFunc(slices.Clone(mine), func(r Record) bool { return r.Kind+" "+r.Drill != d }), 0)
		}
	}
	lostMostOften(b, mine)
}

// drillLine writes one drill's attempts, best and last score, and with a
// pass mark (pass > 0) whether it is passed.
func drillLine(b *strings.Builder, label string, rs []Record, pass int) {
	if len(rs) == 0 {
		fmt.Fprintf(b, "  %-40s not taken\n", label)
		return
	}
	best := slices.MaxFunc(rs, func(a, b Record) int { return a.Points - b.Points }).Points
	fmt.Fprintf(b, "  %-40s %d attempt(s), best %3d, last %3d", label, len(rs), best, rs[len(rs)-1].Points)
	if pass > 0 {
		status := "not yet passed"
		if best >= pass {
			status = "passed"
		}
		fmt.Fprintf(b, " (pass %d: %s)", pass, status)
	}
	b.WriteString("\n")
}

// lostMostOften writes the runbook steps the drills lost points on, most
// often first, with how often.
func lostMostOften(b *strings.Builder, rs []Record) {
	missed := map[string]int{}
	for _, r := range rs {
		for _, m := range r.Missed {
			missed[m]++
		}
	}
	if len(missed) == 0 {
		return
	}
	var steps []string
	for s := range missed {
		steps = append(steps, s)
	}
	slices.SortFunc(steps, func(a, b string) int {
		if missed[a] != missed[b] {
			return missed[b] - missed[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, s := range steps {
		parts = append(parts, fmt.Sprintf("%s (%d)", s, missed[s]))
	}
	fmt.Fprintf(b, "  points lost most often on: %s\n", strings.Join(parts, ", "))
}

// Missed lists the runbook steps of the questions answered wrong or not
// at all, for the history.
func (d *Drill) Missed(s Score) []string {
	var out []string
	for _, a := range s.Answers {
		if !a.Right {
			if st := d.Questions[a.Question].Step; !slices.Contains(out, st) {
				out = append(out, st)
			}
		}
	}
	return out
}
