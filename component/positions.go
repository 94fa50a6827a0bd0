package component

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr/file"
	"go.yaml.in/yaml/v3"
)

// The YAML library reports syntax errors as "yaml: line N: message", where N is often the
// line of the enclosing construct rather than of the mistake, and never gives a column. We
// find the line by parsing prefixes of the file: the parser stops at the first error, so once
// a prefix ends after the mistake it fails with the same message, and a binary search finds
// the shortest such prefix, which ends on the offending line. The column is then read from
// that line.

var yamlErrorRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

func (l *loader) syntaxError(err error) {
	msg, line := splitYAMLError(err)
	if found := locateSyntaxError(l.src, msg); found > 0 {
		line = found
	}
	col := 0
	if line > 0 {
		col = errorColumn(lineText(l.src, line), msg)
	}
	l.errorf(loc{pos: Pos{File: l.file, Line: line, Col: col}}, "YAML syntax error: %s", msg)
}

func splitYAMLError(err error) (msg string, line int) {
	msg = err.Error()
	if m := yamlErrorRE.FindStringSubmatch(msg); m != nil {
		msg = m[2]
		line, _ = strconv.Atoi(m[1])
	}
	return msg, line
}

// yamlError returns the first syntax error of src, nil if it parses.
func yamlError(src []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// locateSyntaxError returns the 1-based line of src on which the error msg shows up, or 0
// when no prefix of src fails with it.
func locateSyntaxError(src []byte, msg string) int {
	ends := []int{} // ends[i] is the length of the prefix holding lines 1..i+1
	for i, b := range src {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(src) {
		ends = append(ends, len(src))
	}
	fails := func(i int) bool {
		err := yamlError(src[:ends[i]])
		if err == nil {
			return false
		}
		m, _ := splitYAMLError(err)
		return m == msg
	}
	i := sort.Search(len(ends), fails)
	if i == len(ends) {
		return 0
	}
	return i + 1
}

// lineText returns the text of a 1-based line of src, without its line break.
func lineText(src []byte, line int) string {
	for i := 1; i < line; i++ {
		nl := bytes.IndexByte(src, '\n')
		if nl < 0 {
			return ""
		}
		src = src[nl+1:]
	}
	if nl := bytes.IndexByte(src, '\n'); nl >= 0 {
		src = src[:nl]
	}
	return strings.TrimSuffix(string(src), "\r")
}

// errorColumn guesses the 1-based column of a syntax error on text from its message.
func errorColumn(text, msg string) int {
	at := -1
	switch {
	case strings.Contains(msg, "cannot start any token"):
		at = strings.IndexAny(text, "\t@`")
	case strings.Contains(msg, "mapping values are not allowed"):
		for i := len(text) - 1; i >= 0; i-- {
			if text[i] == ':' && (i == len(text)-1 || text[i+1] == ' ' || text[i+1] == '\t') {
				at = i
				break
			}
		}
	case strings.Contains(msg, "unknown anchor"):
		at = strings.IndexByte(text, '*')
	case strings.Contains(msg, "expected ',' or ']'"):
		at = strings.LastIndexByte(text, '[')
	case strings.Contains(msg, "expected ',' or '}'"):
		at = strings.LastIndexByte(text, '{')
	}
	if at < 0 {
		at = len(text) - len(strings.TrimLeft(text, " \t"))
	}
	return utf8.RuneCountInString(text[:at]) + 1
}

// guardErrorAt places a guard compile error in the YAML file: the error's line and column in
// the expression are added to where the expression starts, when the scalar's style allows.
func (l *loader) guardErrorAt(n *yaml.Node, path string, err error) (loc, string) {
	at := l.locOf(n, path)
	var fe *file.Error
	if !errors.As(err, &fe) {
		return at, guardMessage(err.Error())
	}
	msg := guardMessage(fe.Message)
	if fe.Line < 1 {
		return at, msg
	}
	switch {
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		// Block scalar: the text starts on the next line, at that line's indentation.
		line := n.Line + fe.Line
		text := lineText(l.src, line)
		indent := len(text) - len(strings.TrimLeft(text, " "))
		if n.Style&yaml.LiteralStyle != 0 {
			at.pos.Line, at.pos.Col = line, indent+fe.Column+1
		} else {
			at.pos.Line, at.pos.Col = n.Line+1, indent+1
		}
	case fe.Line == 1 && !strings.Contains(n.Value, "\n"):
		offset := 0
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			offset = 1
		}
		at.pos.Col = n.Column + offset + fe.Column
	}
	return at, msg
}

// guardMessage turns expr's messages into ones that speak of the guard's variables.
func guardMessage(msg string) string {
	msg = strings.ReplaceAll(msg, "type component.guardEvent", "event")
	msg = strings.ReplaceAll(msg, "component.guardEvent", "event")
	msg = strings.ReplaceAll(msg, "component.guardEnv", "guard variables")
	if strings.HasPrefix(msg, "unknown name ") {
		msg += " (guards can use context, event, payload and publicMember)"
	}
	if strings.HasPrefix(msg, "event has no field ") {
		msg += " (event has type and payload)"
	}
	return msg
}
