package parser

import "strings"

// Hint is what a statement's comment tells the proxy about where it goes:
//
//	/* pgshard: shard=s1 */ SELECT ...
//	SELECT ... /* pgshard: key=42 */
//	-- pgshard: shard=s1, key=42
//
// The word pgshard and the key names are case-insensitive; pairs are
// separated by commas or spaces; values may be quoted with ' or ". Unknown
// keys are ignored. When several hint comments apply to one statement, a
// later value overrides an earlier one. A hint inside a string literal,
// quoted identifier or dollar-quoted string is not a hint.
type Hint struct {
	// Shard names the shard the statement must run on.
	Shard string
	// Key is a sharding key value, for the router to map to a shard.
	Key string
}

// IsZero reports whether the hint says nothing.
func (h Hint) IsZero() bool { return h == Hint{} }

func (h *Hint) merge(o Hint) {
	if o.Shard != "" {
		h.Shard = o.Shard
	}
	if o.Key != "" {
		h.Key = o.Key
	}
}

// hintAt is a hint and the byte offset of its comment.
type hintAt struct {
	pos  int
	hint Hint
}

// scanHints finds the pgshard comments of sql. It follows PostgreSQL's
// lexical rules for the tokens that can hide a comment: '...' and E'...'
// strings, "..." identifiers, $tag$...$tag$ strings, and nested /* */
// comments.
func scanHints(sql string) []hintAt {
	var out []hintAt
	s := sql
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\'':
			backslash := i > 0 && (s[i-1] == 'e' || s[i-1] == 'E') && (i < 2 || !isIdentChar(s[i-2]))
			i = skipQuote(s, i, '\'', backslash)
		case c == '"':
			i = skipQuote(s, i, '"', false)
		case c == '$' && (i == 0 || !isIdentChar(s[i-1])):
			i = skipDollar(s, i)
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				end = len(s) - i
			}
			if h, ok := parseHint(s[i+2 : i+end]); ok {
				out = append(out, hintAt{pos: i, hint: h})
			}
			i += end
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			start, depth := i, 0
			bodyEnd := len(s)
			for i < len(s) {
				if s[i] == '/' && i+1 < len(s) && s[i+1] == '*' {
					depth++
					i += 2
					continue
				}
				if s[i] == '*' && i+1 < len(s) && s[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						bodyEnd = i - 2
						break
					}
					continue
				}
				i++
			}
			if h, ok := parseHint(s[start+2 : bodyEnd]); ok {
				out = append(out, hintAt{pos: start, hint: h})
			}
		default:
			i++
		}
	}
	return out
}

// skipQuote returns the offset after the quoted token starting at i.
func skipQuote(s string, i int, q byte, backslash bool) int {
	i++
	for i < len(s) {
		switch {
		case backslash && s[i] == '\\':
			i += 2
		case s[i] == q:
			if i+1 < len(s) && s[i+1] == q {
				i += 2
				continue
			}
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}

// skipDollar returns the offset after the $tag$...$tag$ string at i, or
// i+1 when the dollar does not open one ($1, a lone $).
func skipDollar(s string, i int) int {
	j := i + 1
	for j < len(s) && s[j] != '$' {
		if !isIdentChar(s[j]) || s[j] == '$' || (j == i+1 && s[j] >= '0' && s[j] <= '9') {
			return i + 1
		}
		j++
	}
	if j >= len(s) {
		return i + 1
	}
	tag := s[i : j+1]
	if end := strings.Index(s[j+1:], tag); end >= 0 {
		return j + 1 + end + len(tag)
	}
	return len(s)
}

// parseHint parses the body of a comment: "pgshard:" and key=value pairs.
func parseHint(body string) (Hint, bool) {
	b := strings.TrimLeft(body, " \t\r\n")
	const word = "pgshard"
	if len(b) < len(word) || !strings.EqualFold(b[:len(word)], word) {
		return Hint{}, false
	}
	b = strings.TrimLeft(b[len(word):], " \t\r\n")
	if !strings.HasPrefix(b, ":") {
		return Hint{}, false
	}
	b = b[1:]
	var h Hint
	found := false
	for {
		b = strings.TrimLeft(b, " \t\r\n,")
		if b == "" {
			break
		}
		k := 0
		for k < len(b) && (isIdentChar(b[k]) || b[k] == '-') {
			k++
		}
		if k == 0 {
			break // not a key: stop at junk
		}
		key := strings.ToLower(b[:k])
		b = strings.TrimLeft(b[k:], " \t\r\n")
		if !strings.HasPrefix(b, "=") {
			break
		}
		b = strings.TrimLeft(b[1:], " \t\r\n")
		var val string
		if b != "" && (b[0] == '\'' || b[0] == '"') {
			q := b[0]
			end := skipQuote(b, 0, q, false)
			inner := b[1:end]
			if end >= 2 && b[end-1] == q {
				inner = b[1 : end-1]
			}
			val = strings.ReplaceAll(inner, string([]byte{q, q}), string(q))
			b = b[end:]
		} else {
			v := 0
			for v < len(b) && !strings.ContainsRune(" \t\r\n,", rune(b[v])) {
				v++
			}
			val, b = b[:v], b[v:]
		}
		switch key {
		case "shard":
			h.Shard, found = val, found || val != ""
		case "key":
			h.Key, found = val, found || val != ""
		}
	}
	return h, found
}
