package config

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem with one configuration key. Parse returns them
// joined with errors.Join; find them with errors.As or by unwrapping.
type FieldError struct {
	// Path is the key's YAML path, such as "databases[0].shards[1].primary",
	// or "" for a problem with the file as a whole.
	Path string
	// Line is the 1-based line of the key in the file or, for a missing key,
	// of the nearest enclosing key; 0 when unknown.
	Line int
	// Msg says what is wrong and what to do. It never contains a secret.
	Msg string
}

// Error formats the error as "path: message (line N)".
func (e *FieldError) Error() string {
	s := e.Msg
	if e.Path != "" {
		s = e.Path + ": " + s
	}
	if e.Line > 0 {
		s += fmt.Sprintf(" (line %d)", e.Line)
	}
	return s
}

// entry is one node of the parsed file with its YAML path.
type entry struct {
	path string
	key  *yaml.Node // the mapping key, nil for list items and the root
	val  *yaml.Node // the value, aliases resolved
}

// index maps YAML paths to the nodes of the parsed file, for defaults
// (which keys are present) and error positions.
type index struct {
	byPath map[string]entry
	all    []entry
}

// maxEntries bounds the index when aliases expand a hostile file.
const maxEntries = 100000

func newIndex(doc *yaml.Node) *index {
	idx := &index{byPath: map[string]entry{}}
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind != 0 {
		idx.walk("", nil, n)
	}
	return idx
}

func (idx *index) walk(path string, key, n *yaml.Node) {
	for n.Kind == yaml.AliasNode && n.Alias != nil && len(idx.all) < maxEntries {
		n = n.Alias
	}
	if len(idx.all) >= maxEntries {
		return
	}
	e := entry{path: path, key: key, val: n}
	if _, seen := idx.byPath[path]; !seen {
		idx.byPath[path] = e
	}
	idx.all = append(idx.all, e)
	switch n.Kind {
	case yaml.MappingNode:
		idx.walkMapping(path, n, false)
	case yaml.SequenceNode:
		for i, item := range n.Content {
			idx.walk(fmt.Sprintf("%s[%d]", path, i), nil, item)
		}
	}
}

// walkMapping indexes a mapping's pairs, its own keys before the keys it
// merges with "<<" (which they override).
func (idx *index) walkMapping(path string, n *yaml.Node, merged bool) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		if merged {
			if _, ok := idx.byPath[p]; ok {
				continue
			}
		}
		idx.walk(p, k, v)
	}
	for _, m := range merges {
		for m.Kind == yaml.AliasNode && m.Alias != nil {
			m = m.Alias
		}
		switch m.Kind {
		case yaml.MappingNode:
			idx.walkMapping(path, m, true)
		case yaml.SequenceNode:
			for _, item := range m.Content {
				for item.Kind == yaml.AliasNode && item.Alias != nil {
					item = item.Alias
				}
				if item.Kind == yaml.MappingNode {
					idx.walkMapping(path, item, true)
				}
			}
		}
	}
}

// has reports whether the file sets path (possibly to an empty value).
func (idx *index) has(path string) bool {
	_, ok := idx.byPath[path]
	return ok
}

// line is the line of path's key (or list item) or, when path is missing,
// of its nearest present ancestor; 0 if none.
func (idx *index) line(path string) int {
	for {
		if e, ok := idx.byPath[path]; ok {
			if e.key != nil {
				return e.key.Line
			}
			return e.val.Line
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

// parentPath strips the last ".key" or "[i]" of path.
func parentPath(path string) string {
	i := max(strings.LastIndexByte(path, '.'), strings.LastIndexByte(path, '['))
	if i < 0 {
		return ""
	}
	return path[:i]
}

// reporter collects the errors of one Parse.
type reporter struct {
	idx  *index
	errs []*FieldError
	// bad holds paths that failed to decode; validation errors at or below
	// them would only repeat the decoding error.
	bad map[string]bool
}

// add reports a validation error at path unless decoding already failed at
// or above it.
func (r *reporter) add(path, format string, args ...any) {
	for p := path; ; p = parentPath(p) {
		if r.bad[p] {
			return
		}
		if p == "" {
			break
		}
	}
	r.errs = append(r.errs, &FieldError{Path: path, Line: r.idx.line(path), Msg: fmt.Sprintf(format, args...)})
}

// addDecode reports an error found while decoding. When zeroed is set, yaml
// left the value at path zero (or dropped the list item, shifting the items
// after it), so validation is silenced there (or for the whole list).
func (r *reporter) addDecode(path string, line int, msg string, zeroed bool) {
	if zeroed {
		r.markBad(path)
	}
	r.errs = append(r.errs, &FieldError{Path: path, Line: line, Msg: msg})
}

func (r *reporter) markBad(path string) {
	r.bad[path] = true
	if strings.HasSuffix(path, "]") {
		r.bad[parentPath(path)] = true
	}
}

// checkInt reports an integer key written as a float or another scalar that
// yaml accepted anyway (it truncates 1.5 to 1).
func (r *reporter) checkInt(path string) {
	e, ok := r.idx.byPath[path]
	if !ok || r.bad[path] || e.val.Kind != yaml.ScalarNode {
		return
	}
	if tag := e.val.ShortTag(); tag != "!!int" && tag != "!!null" {
		r.addDecode(path, r.idx.line(path), fmt.Sprintf("expected an integer, got %s %q", tagName(tag), e.val.Value), true)
	}
}

// err returns the collected errors in file order, joined, or nil.
func (r *reporter) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(r.errs, func(a, b *FieldError) int { return cmp.Compare(a.Line, b.Line) })
	errs := make([]error, len(r.errs))
	for i, e := range r.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

var (
	reLine       = regexp.MustCompile(`^line (\d+)(?: column (\d+))?: (.*)$`)
	reUnknown    = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	reSet        = regexp.MustCompile(`^field (\S+) already set in type \S+$`)
	reDefined    = regexp.MustCompile(`^mapping key (".*") already defined at line (\d+)$`)
	reUnmarshal  = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
	structByName = map[string]reflect.Type{}
	// stringTypes are the named string types of the configuration.
	stringTypes = map[string]bool{}
)

func init() {
	for _, v := range []any{Config{}, TLS{}, User{}, Database{}, Shard{}, TableRule{}, Range{}} {
		t := reflect.TypeOf(v)
		structByName[t.String()] = t
		for i := range t.NumField() {
			if f := t.Field(i).Type; f.Kind() == reflect.String {
				stringTypes[f.String()] = true
			}
		}
	}
}

// decodeError turns one of yaml's "line N: ..." decoding messages into a
// FieldError with the path of the node it is about.
func (r *reporter) decodeError(text string) {
	m := reLine.FindStringSubmatch(text)
	if m == nil {
		r.addDecode("", 0, text, false)
		return
	}
	line, _ := strconv.Atoi(m[1])
	msg := m[3]
	if m[2] != "" { // from nodeError: the exact node is known
		col, _ := strconv.Atoi(m[2])
		e, ok := r.idx.find(func(e entry) bool { return e.val.Line == line && e.val.Column == col })
		r.addDecode(e.path, line, msg, ok)
		return
	}
	if m := reUnknown.FindStringSubmatch(msg); m != nil {
		e, _ := r.idx.find(func(e entry) bool { return e.key != nil && e.key.Line == line && e.key.Value == m[1] })
		msg := "unknown key"
		if t, ok := structByName[m[2]]; ok {
			msg += "; valid keys here: " + strings.Join(yamlKeys(t), ", ")
		}
		r.addDecode(e.path, line, msg, false)
		return
	}
	if m := reSet.FindStringSubmatch(msg); m != nil {
		e, _ := r.idx.find(func(e entry) bool { return e.key != nil && e.key.Line == line && e.key.Value == m[1] })
		r.addDecode(e.path, line, "key set twice", false)
		return
	}
	if m := reDefined.FindStringSubmatch(msg); m != nil {
		name, _ := strconv.Unquote(m[1])
		e, ok := r.idx.find(func(e entry) bool { return e.key != nil && e.key.Line == line && e.key.Value == name })
		if ok {
			// yaml skips the whole mapping: silence errors about its keys.
			r.markBad(parentPath(e.path))
		}
		r.addDecode(e.path, line, "duplicate key (first set on line "+m[2]+")", false)
		return
	}
	if m := reUnmarshal.FindStringSubmatch(msg); m != nil {
		tag, value, target := m[1], m[2], m[3]
		// The innermost node on the line with that tag and value: a flow
		// mapping's line also holds the mappings around it.
		e, ok := r.idx.findLast(func(e entry) bool {
			return e.val.Line == line && e.val.ShortTag() == tag && strings.HasPrefix(e.val.Value, strings.TrimSuffix(value, "..."))
		})
		if !ok {
			e, ok = r.idx.findLast(func(e entry) bool { return e.val.Line == line })
		}
		got := tagName(tag)
		if value != "" && tag != "!!null" {
			got += " " + strconv.Quote(value)
		}
		r.addDecode(e.path, line, fmt.Sprintf("expected %s, got %s", typeName(target), got), ok)
		return
	}
	r.addDecode("", line, msg, false)
}

// find returns the first entry matching ok.
func (idx *index) find(ok func(entry) bool) (entry, bool) {
	for _, e := range idx.all {
		if ok(e) {
			return e, true
		}
	}
	return entry{}, false
}

// findLast returns the last entry matching ok.
func (idx *index) findLast(ok func(entry) bool) (entry, bool) {
	for i := len(idx.all) - 1; i >= 0; i-- {
		if ok(idx.all[i]) {
			return idx.all[i], true
		}
	}
	return entry{}, false
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func tagName(tag string) string {
	switch tag {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	case "!!map":
		return "a mapping"
	case "!!seq":
		return "a list"
	}
	return tag
}

// typeName describes the Go type yaml was decoding into.
func typeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "int"):
		return "an integer"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	case goType == "bool":
		return "a boolean"
	case goType == "string" || stringTypes[goType]:
		return "a string"
	case structByName[goType] != nil:
		return "a mapping"
	}
	return goType
}
