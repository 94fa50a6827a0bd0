package component

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file holds the loader's plumbing: problem reporting and typed access to the keys of a
// YAML mapping, each access reporting wrong types at the value's position.

// loader collects the problems of one file while it is decoded and checked.
type loader struct {
	file  string
	src   []byte
	errs  []Problem
	warns []Problem
	// objs remembers the mapping each model object came from, so that later checks can point
	// at the exact value (e.g. a transition's "to").
	objs map[any]*object
	// dupLines are the lines where a duplicate key was reported with its path.
	dupLines map[int]bool
}

// loc is where a value is: its position and its YAML path.
type loc struct {
	pos  Pos
	path string
}

func (l *loader) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: l.file}
	}
	return Pos{File: l.file, Line: n.Line, Col: n.Column}
}

func (l *loader) report(sev Severity, at loc, format string, args ...any) {
	p := Problem{Severity: sev, Pos: at.pos, Path: at.path, Message: fmt.Sprintf(format, args...)}
	if sev == SeverityError {
		l.errs = append(l.errs, p)
	} else {
		l.warns = append(l.warns, p)
	}
}

func (l *loader) errorf(at loc, format string, args ...any) {
	l.report(SeverityError, at, format, args...)
}

func (l *loader) warnf(at loc, format string, args ...any) {
	l.report(SeverityWarning, at, format, args...)
}

func (l *loader) locOf(n *yaml.Node, path string) loc { return loc{l.pos(n), path} }

// at returns where key of a loaded model object is, or the object itself when the key is
// absent (or the object unknown).
func (l *loader) at(obj any, key string) loc {
	o := l.objs[obj]
	if o == nil {
		return loc{pos: Pos{File: l.file}}
	}
	return o.loc(key)
}

// remember records the mapping an object was decoded from.
func (l *loader) remember(obj any, o *object) {
	if o != nil {
		l.objs[obj] = o
	}
}

// object is a YAML mapping being decoded, with its keys in file order.
type object struct {
	l     *loader
	node  *yaml.Node
	path  string
	order []string
	keys  map[string]*yaml.Node // key nodes
	vals  map[string]*yaml.Node // value nodes, aliases resolved
}

// maxMergeDepth bounds nested YAML merge keys ("<<").
const maxMergeDepth = 8

// object reads n as a mapping. known lists the keys of this level: others are reported as
// warnings with a typo hint (nil: any key is fine). It reports an error and returns nil
// when n is not a mapping.
func (l *loader) object(n *yaml.Node, path string, known []string) *object {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		l.errorf(l.locOf(n, path), "%s must be a mapping, got %s", name(path, "the document"), kindOf(n))
		return nil
	}
	o := &object{l: l, node: n, path: path, keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{}}
	o.collect(n, 0, false)
	if known != nil {
		for _, k := range o.order {
			if slices.Contains(known, k) {
				continue
			}
			msg := fmt.Sprintf("unknown key %q", k)
			if s := suggest(k, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			l.warnf(o.keyLoc(k), "%s", msg)
		}
	}
	return o
}

// collect adds the pairs of mapping n; merged pairs ("<<: *anchor") never override explicit ones.
func (o *object) collect(n *yaml.Node, depth int, merged bool) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		key := k.Value
		if k.Kind != yaml.ScalarNode {
			o.l.errorf(o.l.locOf(k, o.path), "%s: keys must be plain strings, got %s", name(o.path, "document"), kindOf(k))
			continue
		}
		if first, dup := o.keys[key]; dup {
			if !merged && !o.l.dupLines[k.Line] {
				o.l.dupLines[k.Line] = true
				o.l.errorf(o.l.locOf(k, join(o.path, key)), "duplicate key %q (first at line %d)", key, first.Line)
			}
			continue
		}
		o.keys[key] = k
		o.vals[key] = deref(v)
		o.order = append(o.order, key)
	}
	for _, m := range merges {
		m = deref(m)
		if depth >= maxMergeDepth || m == nil {
			continue
		}
		switch m.Kind {
		case yaml.MappingNode:
			o.collect(m, depth+1, true)
		case yaml.SequenceNode:
			for _, item := range m.Content {
				if item = deref(item); item != nil && item.Kind == yaml.MappingNode {
					o.collect(item, depth+1, true)
				}
			}
		default:
			o.l.errorf(o.l.locOf(m, o.path), "merge key \"<<\" needs a mapping or a list of mappings, got %s", kindOf(m))
		}
	}
}

func (o *object) sub(key string) string { return join(o.path, key) }

// loc is where the value of key is, or the mapping itself when the key is absent.
func (o *object) loc(key string) loc {
	if v := o.vals[key]; v != nil && key != "" {
		return o.l.locOf(v, o.sub(key))
	}
	return o.l.locOf(o.node, o.path)
}

// keyLoc is where key itself is written.
func (o *object) keyLoc(key string) loc {
	if k := o.keys[key]; k != nil {
		return o.l.locOf(k, o.sub(key))
	}
	return o.loc("")
}

// value returns the value node of key, nil when the key is absent or null.
func (o *object) value(key string) *yaml.Node {
	v := o.vals[key]
	if v == nil || isNull(v) {
		return nil
	}
	return v
}

func (o *object) has(key string) bool { return o.value(key) != nil }

// str returns a scalar value as written. ok is false when the key is absent, null or not a scalar
// (the latter reported).
func (o *object) str(key string) (string, bool) {
	v := o.value(key)
	if v == nil {
		return "", false
	}
	if v.Kind != yaml.ScalarNode {
		o.l.errorf(o.loc(key), "%s must be a string, got %s", key, kindOf(v))
		return "", false
	}
	return v.Value, true
}

// required returns a non-empty scalar, reporting a missing key at the mapping.
func (o *object) required(key string) string {
	if o.value(key) == nil {
		o.l.errorf(loc{o.l.pos(o.node), o.sub(key)}, "missing required key %q", key)
		return ""
	}
	s, ok := o.str(key)
	if ok && strings.TrimSpace(s) == "" {
		o.l.errorf(o.loc(key), "%s must not be empty", key)
		return ""
	}
	return s
}

// boolean returns a boolean value; set is false when the key is absent or invalid.
func (o *object) boolean(key string) (val, set bool) {
	v := o.value(key)
	if v == nil {
		return false, false
	}
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" {
		if err := v.Decode(&val); err == nil {
			return val, true
		}
	}
	o.l.errorf(o.loc(key), "%s must be a boolean (true or false), got %s", key, kindOf(v))
	return false, false
}

// integer returns an integer value; set is false when the key is absent or invalid.
func (o *object) integer(key string) (val int64, set bool) {
	v := o.value(key)
	if v == nil {
		return 0, false
	}
	if v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case "!!int":
			if err := v.Decode(&val); err == nil {
				return val, true
			}
		case "!!float":
			var f float64
			if err := v.Decode(&f); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<62 {
				return int64(f), true
			}
		}
	}
	o.l.errorf(o.loc(key), "%s must be an integer, got %s", key, kindOf(v))
	return 0, false
}

// number returns a numeric value, nil when absent or invalid.
func (o *object) number(key string) *float64 {
	v := o.value(key)
	if v == nil {
		return nil
	}
	if v.Kind == yaml.ScalarNode && (v.ShortTag() == "!!int" || v.ShortTag() == "!!float") {
		var f float64
		if err := v.Decode(&f); err == nil && !math.IsNaN(f) {
			return &f
		}
	}
	o.l.errorf(o.loc(key), "%s must be a number, got %s", key, kindOf(v))
	return nil
}

// list returns the items of a sequence value (aliases resolved); nil when absent, null or not
// a list (the latter reported).
func (o *object) list(key string) []*yaml.Node {
	v := o.value(key)
	if v == nil {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		o.l.errorf(o.loc(key), "%s must be a list, got %s", key, kindOf(v))
		return nil
	}
	items := make([]*yaml.Node, len(v.Content))
	for i, it := range v.Content {
		items[i] = deref(it)
	}
	return items
}

// child decodes a mapping value; nil when absent or not a mapping (the latter reported).
func (o *object) child(key string, known []string) *object {
	v := o.value(key)
	if v == nil {
		return nil
	}
	return o.l.object(v, o.sub(key), known)
}

// any decodes a value of any shape (description, metadata, payload, default …).
func (o *object) any(key string) any {
	v := o.value(key)
	if v == nil {
		return nil
	}
	return o.l.generic(v, o.sub(key))
}

// generic decodes a node into plain Go values: map[string]any, []any, string, int, float64,
// bool, nil. Duplicate keys are reported once for the whole document (see duplicateKeys).
func (l *loader) generic(n *yaml.Node, path string) any {
	var v any
	if err := n.Decode(&v); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			l.errorf(l.locOf(n, path), "%s", strings.TrimPrefix(err.Error(), "yaml: "))
			return nil
		}
	}
	return normalize(v)
}

var duplicateKeyRE = regexp.MustCompile(`^line (\d+): mapping key "(.*)" already defined at line (\d+)$`)

// duplicateKeys reports the duplicate keys the YAML decoder found in the whole document,
// except those already reported with their path.
func (l *loader) duplicateKeys(te *yaml.TypeError) {
	for _, e := range te.Errors {
		m := duplicateKeyRE.FindStringSubmatch(e)
		if m == nil {
			l.errorf(loc{pos: Pos{File: l.file}}, "%s", e)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		if l.dupLines[line] {
			continue
		}
		l.dupLines[line] = true
		text := lineText(l.src, line)
		col := strings.Index(text, m[2])
		if col < 0 {
			col = len(text) - len(strings.TrimLeft(text, " -"))
		}
		l.errorf(loc{pos: Pos{File: l.file, Line: line, Col: col + 1}}, "duplicate key %q (first at line %s)", m[2], m[3])
	}
}

// normalize turns the map[any]any that YAML gives for non-string keys into map[string]any,
// so that every decoded value can be encoded as JSON.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	}
	return v
}

func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindOf names the kind of a node for messages.
func kindOf(n *yaml.Node) string {
	n = deref(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean (" + n.Value + ")"
		case "!!int", "!!float":
			return "a number (" + n.Value + ")"
		}
		return strconv.Quote(n.Value)
	}
	return "an unexpected value"
}

// join appends key to a YAML path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// name is how a message names the value at path.
func name(path, root string) string {
	if path == "" {
		return root
	}
	return path
}

// suggest returns the candidate closest to word when it is likely a typo of it: same letters
// ignoring case, at most two edits away (and fewer edits than word has letters), or a
// shortening of it ("single" for "singleton").
func suggest(word string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if strings.EqualFold(word, c) {
			return c
		}
		if len(word) >= 3 && strings.HasPrefix(strings.ToLower(c), strings.ToLower(word)) {
			return c
		}
		if d := levenshtein(word, c); d < bestDist && d < len(word) {
			best, bestDist = c, d
		}
	}
	return best
}

// levenshtein is the edit distance between a and b, by runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// quoteList formats names for messages: A, B, C (at most 20, then "…").
func quoteList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	if len(names) > 20 {
		return strings.Join(names[:20], ", ") + ", …"
	}
	return strings.Join(names, ", ")
}
