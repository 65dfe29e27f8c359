package report

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Text from the database (query text, application names) is untrusted: it
// must not break the Markdown or smuggle HTML into it.

var backticks = regexp.MustCompile("`+")

// fence puts s in a fenced code block whose fence is longer than any run of
// backticks inside it.
func fence(lang, s string) string {
	n := 3
	for _, m := range backticks.FindAllString(s, -1) {
		n = max(n, len(m)+1)
	}
	f := strings.Repeat("`", n)
	return f + lang + "\n" + controls.Replace(strings.TrimRight(s, "\n")) + "\n" + f
}

// controls shows control characters in code blocks as escapes, so that
// printing the post-mortem on a terminal cannot drive it.
var controls = func() *strings.Replacer {
	var pairs []string
	for c := rune(0); c < 0x20; c++ {
		if c != '\n' && c != '\t' {
			pairs = append(pairs, string(c), fmt.Sprintf(`\x%02X`, c))
		}
	}
	return strings.NewReplacer(append(pairs, "\x7f", `\x7F`)...)
}()

// cell makes s safe inside a Markdown table cell: one line, no pipes, no
// HTML, and at most n runes.
func cell(s string, n int) string { return inline(oneLine(s, n)) }

// inline escapes s for running Markdown text: HTML and Markdown markup are
// shown, not interpreted.
func inline(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '_':
			// Between letters or digits an underscore cannot open or
			// close emphasis: identifiers stay readable.
			if i > 0 && i+1 < len(s) && isAlnum(s[i-1]) && isAlnum(s[i+1]) {
				b.WriteByte('_')
				continue
			}
			b.WriteString(`\_`)
		case '|', '\\', '`', '*', '[', ']', '#', '~':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n', '\r', '\t':
			b.WriteByte(' ')
		default:
			if r < 0x20 || r == 0x7f {
				b.WriteRune('�')
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// quoted finds Go-quoted strings (%q) in analysis text: query text.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// prose escapes analysis text for running Markdown, showing the query
// text it quotes as code spans.
func prose(s string) string {
	var b strings.Builder
	last := 0
	for _, m := range quoted.FindAllStringIndex(s, -1) {
		q, err := strconv.Unquote(s[m[0]:m[1]])
		if err != nil {
			continue
		}
		b.WriteString(inline(s[last:m[0]]))
		b.WriteString(code(q))
		last = m[1]
	}
	b.WriteString(inline(s[last:]))
	return b.String()
}
