package replay

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Table is a query result: named columns and rows of text, NULL as nil.
type Table struct {
	Columns []string
	// Right marks numeric columns, which psql aligns right.
	Right []bool
	Rows  [][]*string
}

// Col returns the index of the named column, or -1.
func (t *Table) Col(name string) int {
	for i, c := range t.Columns {
		if c == name {
			return i
		}
	}
	return -1
}

// Get returns row r's value of the named column ("" for NULL).
func (t *Table) Get(r int, name string) string {
	i := t.Col(name)
	if i < 0 || t.Rows[r][i] == nil {
		return ""
	}
	return *t.Rows[r][i]
}

func (t *Table) add(vals ...*string) { t.Rows = append(t.Rows, vals) }

func str(s string) *string { return &s }

// nullIfEmpty is for columns PostgreSQL reports as NULL rather than "".
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// WritePsql prints t the way psql's default aligned format does: centred
// headers, numbers aligned right, multi-line values continued with "+",
// and the row count. Control characters and invalid UTF-8 are shown
// escaped (as psql does), so recorded text cannot drive the terminal.
func (t *Table) WritePsql(w io.Writer) error {
	cells, width := t.displayCells()
	var b strings.Builder
	t.writeHeader(&b, width)
	for r := range t.Rows {
		t.writeRow(&b, cells[r], width)
	}
	if len(t.Rows) == 1 {
		b.WriteString("(1 row)\n\n")
	} else {
		fmt.Fprintf(&b, "(%d rows)\n\n", len(t.Rows))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// displayCells are t's values split into the lines psql shows (row,
// column, line; a NULL shows as one empty line), and each column's width:
// its widest line or its name.
func (t *Table) displayCells() (cells [][][]string, width []int) {
	n := len(t.Columns)
	cells = make([][][]string, len(t.Rows))
	width = make([]int, n)
	for i, c := range t.Columns {
		width[i] = utf8.RuneCountInString(c)
	}
	for r, row := range t.Rows {
		cells[r] = make([][]string, n)
		for i, v := range row {
			if v == nil {
				cells[r][i] = []string{""}
				continue
			}
			cells[r][i] = displayLines(*v)
			for _, l := range cells[r][i] {
				width[i] = max(width[i], utf8.RuneCountInString(l))
			}
		}
	}
	return cells, width
}

// writeHeader writes the column names, centred, and the rule under them.
func (t *Table) writeHeader(b *strings.Builder, width []int) {
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString("|")
		}
		pad := width[i] - utf8.RuneCountInString(c)
		fmt.Fprintf(b, " %s%s%s ", strings.Repeat(" ", pad/2), c, strings.Repeat(" ", (pad+1)/2))
	}
	b.WriteString("\n")
	for i := range t.Columns {
		if i > 0 {
			b.WriteString("+")
		}
		b.WriteString(strings.Repeat("-", width[i]+2))
	}
	b.WriteString("\n")
}

// writeRow writes one row, as many lines as its tallest value: numbers
// aligned right, a value continued on the next line marked "+", the last
// column unpadded.
func (t *Table) writeRow(b *strings.Builder, cells [][]string, width []int) {
	n := len(t.Columns)
	lines := 1
	for i := range n {
		lines = max(lines, len(cells[i]))
	}
	for l := range lines {
		for i := range n {
			var s string
			if l < len(cells[i]) {
				s = cells[i][l]
			}
			more := l+1 < len(cells[i])
			if i > 0 {
				b.WriteString("|")
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(s))
			right := t.Right != nil && t.Right[i]
			last := i == n-1
			b.WriteString(" ")
			switch {
			case right:
				b.WriteString(pad + s)
			case last && !more:
				b.WriteString(s) // psql does not pad the last column
			default:
				b.WriteString(s + pad)
			}
			switch {
			case more:
				b.WriteString("+")
			case !last:
				b.WriteString(" ")
			}
		}
		b.WriteString("\n")
	}
}

// displayLines splits a value into the lines psql shows: newlines break
// lines, tabs go to the next multiple of 8, carriage returns and other
// control characters and invalid bytes show as escapes.
func displayLines(s string) []string {
	var lines []string
	var cur strings.Builder
	col := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&cur, `\x%02X`, s[i])
			col += 4
		case r == '\n':
			lines = append(lines, cur.String())
			cur.Reset()
			col = 0
		case r == '\t':
			n := 8 - col%8
			cur.WriteString(strings.Repeat(" ", n))
			col += n
		case r == '\r':
			cur.WriteString(`\r`)
			col += 2
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&cur, `\x%02X`, r)
			col += 4
		default:
			cur.WriteRune(r)
			col++
		}
		i += size
	}
	return append(lines, cur.String())
}

// Printable escapes what a terminal would interpret in recorded text
// (control characters, invalid bytes) the way the views do.
func Printable(s string) string { return strings.Join(displayLines(s), "\n") }
