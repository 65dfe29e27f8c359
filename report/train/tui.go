package train

import (
	"context"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/lockscope/lockscope/report/replay"
)

// RunTUI runs the drill full-screen on a terminal: the runbook's views of
// the moment on top (keys 1–6, scrolled with the arrows), the question
// below (a, b, c…), the evidence after each answer, the debrief at the end.
func RunTUI(ctx context.Context, d *Drill, in io.Reader, out io.Writer) (Score, error) {
	m := newModel(ctx, d)
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out))
	final, err := p.Run()
	if err != nil {
		return Score{}, err
	}
	fm := final.(*model)
	if fm.err != nil {
		return fm.score, fm.err
	}
	// The debrief stays on the terminal once the full screen is gone.
	_, err = io.WriteString(out, d.Debrief(fm.score))
	return fm.score, err
}

var (
	styleHeader = lipgloss.NewStyle().Bold(true).Reverse(true)
	styleTitle  = lipgloss.NewStyle().Bold(true)
	styleRight  = lipgloss.NewStyle().Foreground(lipgloss.Color("2")).Bold(true)
	styleWrong  = lipgloss.NewStyle().Foreground(lipgloss.Color("1")).Bold(true)
	styleDim    = lipgloss.NewStyle().Faint(true)
)

type model struct {
	ctx   context.Context
	d     *Drill
	q     int  // current question
	shown bool // the current question has been answered
	right bool
	given string
	view  string // current runbook view
	lines []string
	x, y  int // scroll offsets of the view pane
	w, h  int
	score Score
	done  bool
	err   error
}

func newModel(ctx context.Context, d *Drill) *model {
	m := &model{ctx: ctx, d: d, view: replay.ViewBlocking, w: 100, h: 30}
	m.load()
	return m
}

// load renders the current view at the current question's moment.
func (m *model) load() {
	if m.q >= len(m.d.Questions) {
		return
	}
	f, err := m.d.Frame(m.ctx, m.d.Questions[m.q].At)
	if err != nil {
		m.err = err
		return
	}
	var b strings.Builder
	if err := replay.Render(&b, f, []string{m.view}); err != nil {
		m.err = err
		return
	}
	m.lines = strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	m.x, m.y = 0, 0
}

func (m *model) Init() tea.Cmd { return nil }

func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case tea.KeyPressMsg:
		if m.err != nil {
			return m, tea.Quit
		}
		key := msg.String()
		switch key {
		case "ctrl+c", "q", "esc":
			m.finish()
			return m, tea.Quit
		case "up":
			m.y = max(m.y-1, 0)
		case "down":
			m.y = min(m.y+1, max(len(m.lines)-1, 0))
		case "pgup":
			m.y = max(m.y-m.paneHeight(), 0)
		case "pgdown", "space":
			if !m.shown || key == "pgdown" {
				m.y = min(m.y+m.paneHeight(), max(len(m.lines)-1, 0))
				break
			}
			fallthrough
		case "enter":
			if m.shown {
				m.q++
				m.shown = false
				if m.q >= len(m.d.Questions) {
					m.done = true
					return m, tea.Quit
				}
				m.load()
			}
		case "left":
			m.x = max(m.x-8, 0)
		case "right":
			m.x += 8
		case "1", "2", "3", "4", "5", "6":
			n := int(key[0] - '1')
			if n < len(replay.Views) {
				m.view = replay.Views[n].Name
				m.load()
			}
		default:
			if !m.shown && m.q < len(m.d.Questions) {
				if k, right, ok := m.d.Check(m.q, key); ok {
					m.shown, m.right, m.given = true, right, k
					m.score.Answers = append(m.score.Answers, Answer{Question: m.q, Given: k, Right: right})
				}
			}
		}
	}
	return m, nil
}

// finish counts the questions not reached as missed.
func (m *model) finish() {
	for i := len(m.score.Answers); i < len(m.d.Questions); i++ {
		m.score.Answers = append(m.score.Answers, Answer{Question: i})
	}
}

// paneHeight is what is left for the view once the question is drawn.
func (m *model) paneHeight() int {
	used := 4 + 2 // header, view title, question block margins
	if m.q < len(m.d.Questions) {
		used += 2 + len(m.d.Questions[m.q].Choices)
		if m.shown {
			used += 1 + strings.Count(wrap(m.evidence(), m.w), "\n") + 1
		}
	}
	return max(m.h-used, 3)
}

func (m *model) evidence() string {
	q := m.d.Questions[m.q]
	return replay.Printable(q.Evidence)
}

func (m *model) View() tea.View {
	var b strings.Builder
	d := m.d
	if m.err != nil {
		v := tea.NewView("lockscope train: " + m.err.Error() + "\n(press any key)")
		return v
	}
	if m.q >= len(d.Questions) {
		return tea.NewView("")
	}
	q := d.Questions[m.q]
	n := q.Waiting
	head := fmt.Sprintf(" lockscope train · incident %d on %s · %s (%s UTC) · %d waiting · question %d of %d · score %d ",
		d.Incident.ID, replay.Printable(strings.Join(d.Incident.Relations, ", ")), d.T(q.At), q.At.Format("15:04:05.000"),
		n, m.q+1, len(d.Questions), m.score.Right())
	b.WriteString(styleHeader.Render(cut(head, 0, m.w)) + "\n")
	var tabs []string
	for i, v := range replay.Views {
		t := fmt.Sprintf("%d %s", i+1, v.Name)
		if v.Name == m.view {
			t = styleTitle.Render("[" + t + "]")
		} else {
			t = styleDim.Render(t)
		}
		tabs = append(tabs, t)
	}
	b.WriteString(strings.Join(tabs, "  ") + "\n")
	ph := m.paneHeight()
	for i := range ph {
		if l := m.y + i; l < len(m.lines) {
			b.WriteString(cut(m.lines[l], m.x, m.w))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n" + styleTitle.Render(cut(q.Prompt, 0, m.w)) + "\n")
	for i, c := range q.Choices {
		line := fmt.Sprintf("  %c) %s", 'a'+i, replay.Printable(c.Text))
		if m.shown && c.Key == q.Answer {
			line = styleRight.Render(line + "  ✓")
		} else if m.shown && c.Key == m.given {
			line = styleWrong.Render(line + "  ✗")
		}
		b.WriteString(line + "\n")
	}
	if m.shown {
		verdict := styleRight.Render("Right.")
		if !m.right {
			verdict = styleWrong.Render("Not quite.")
		}
		b.WriteString("\n" + verdict + " " + wrap(m.evidence(), m.w) + "\n")
		b.WriteString(styleDim.Render("enter: next question · 1-6: views · arrows: scroll · q: quit"))
	} else {
		b.WriteString(styleDim.Render("a-" + string(rune('a'+len(q.Choices)-1)) + ": answer · 1-6: views of this moment · arrows, pgup/pgdn: scroll · q: quit"))
	}
	v := tea.NewView(b.String())
	v.AltScreen = true
	v.WindowTitle = "lockscope train"
	return v
}

// cut returns the columns [from, from+width) of a plain line.
func cut(s string, from, width int) string {
	if from > 0 {
		i := 0
		for j := range s {
			if i == from {
				s = s[j:]
				break
			}
			i++
		}
		if i < from {
			return ""
		}
	}
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	i := 0
	for j := range s {
		if i == width {
			return s[:j]
		}
		i++
	}
	return s
}

// wrap breaks text into lines of at most width columns at spaces.
func wrap(s string, width int) string {
	width = max(width, 20)
	var out, line strings.Builder
	n := 0
	for _, w := range strings.Fields(s) {
		wl := utf8.RuneCountInString(w)
		if n > 0 && n+1+wl > width {
			out.WriteString(line.String() + "\n")
			line.Reset()
			n = 0
		}
		if n > 0 {
			line.WriteString(" ")
			n++
		}
		line.WriteString(w)
		n += wl
	}
	out.WriteString(line.String())
	return out.String()
}
