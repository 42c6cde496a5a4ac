package parser

import "strings"

// Normalize appends to dst the text of sql with its literals replaced by
// parameters $1, $2, ... in order, and appends their values to lits
// (lits[i] is the value of $i+1: a number as written, a string's contents
// with doubled quotes undoubled). It reports false, with nothing replaced,
// when sql has parameters of its own or no literal it may replace.
//
// The simple protocol sends a new literal with every statement (pgbench -S
// sends a new aid each time), so a cache keyed by raw text misses every
// time; keyed by the normalized text it hits, and the literals become the
// values of the parameters the cached analysis refers to.
//
// A literal is replaced only where a parameter means the same to the
// analyser and parses: after an operator, '(', ',' or '[', or after one
// of a few keywords (SELECT, WHERE, AND, OR, NOT, LIKE, ILIKE, BETWEEN,
// WHEN, THEN, ELSE, LIMIT, OFFSET, RETURNING). Not replaced: literals
// after '-' (the grammar folds -5 into a constant, not -$1), numbers in
// ORDER BY, GROUP BY and PARTITION BY lists (positions, not values),
// numbers followed by letters, numbers right inside ANY(, ALL( or SOME(
// (PostgreSQL wants an array there; ANY($1) would take one), typed
// literals (interval '1 day'), E'...', U&'...', B'...', X'...' and N'...'
// strings, and dollar-quoted ones. A text whose normalized form does not
// parse is analysed as it is (see Cache).
func Normalize(dst []byte, lits []string, sql string) ([]byte, []string, bool) {
	lx := lexer{src: sql}
	s := sql
	d0, n0 := len(dst), len(lits)
	copied := 0 // s[:copied] is in dst
	const (
		prevOther = iota
		prevOp    // an operator, '(', ',', '[' or a listed keyword
		prevMinus
		prevQuant // ANY, ALL or SOME
		prevArray // '(' after ANY, ALL or SOME: a string there is an array
	)
	prev := prevOp
	depth, byDepth := 0, -1 // byDepth: the depth of an open ORDER/GROUP BY list
	replace := func(begin, end int, val string) {
		dst = append(dst, s[copied:begin]...)
		lits = append(lits, val)
		dst = append(dst, '$')
		dst = appendInt(dst, len(lits)-n0)
		copied = end
	}
	for lx.pos < len(s) {
		c := s[lx.pos]
		begin := lx.pos
		switch {
		case lx.skipSpace():
			continue
		case c == '\'':
			lx.skipQuoted('\'', false)
			if (prev == prevOp || prev == prevArray) && lx.pos-begin >= 2 && s[lx.pos-1] == '\'' {
				val := s[begin+1 : lx.pos-1]
				if strings.Contains(val, "''") {
					val = strings.ReplaceAll(val, "''", "'")
				}
				replace(begin, lx.pos, val)
			}
			prev = prevOther
		case c == '"':
			lx.skipQuoted('"', false)
			prev = prevOther
		case c == '$':
			if lx.pos+1 < len(s) && s[lx.pos+1] >= '0' && s[lx.pos+1] <= '9' {
				return dst[:d0], lits[:n0], false // a parameter of its own
			}
			if !lx.dollarQuote() {
				lx.pos++
			}
			prev = prevOther
		case c >= '0' && c <= '9' || c == '.' && lx.pos+1 < len(s) && s[lx.pos+1] >= '0' && s[lx.pos+1] <= '9':
			end := scanNumber(s, lx.pos)
			lx.pos = end
			if end < len(s) && (isIdentStart(s[end]) || s[end] == '.') {
				// 1abc, 0x1F, 1.2.3: not a plain number; leave the rest
				// to the parser.
				for lx.pos < len(s) && (isIdentChar(s[lx.pos]) || s[lx.pos] == '.') {
					lx.pos++
				}
				prev = prevOther
				continue
			}
			if prev == prevOp && byDepth < 0 {
				replace(begin, end, s[begin:end])
			}
			prev = prevOther
		case isIdentStart(c):
			for lx.pos < len(s) && isIdentChar(s[lx.pos]) {
				lx.pos++
			}
			w := s[begin:lx.pos]
			if len(w) == 1 && lx.pos < len(s) && (s[lx.pos] == '\'' || s[lx.pos] == '&') {
				// E'...', B'...', X'...', N'...', U&'...': kept as written.
				if s[lx.pos] == '&' {
					lx.pos++
				}
				if lx.pos < len(s) && s[lx.pos] == '\'' {
					lx.skipQuoted('\'', c == 'e' || c == 'E')
				}
				prev = prevOther
				continue
			}
			if byDepth == depth && endsByList(w) {
				byDepth = -1
			}
			switch {
			case keywordBefore(w):
				prev = prevOp
			case strings.EqualFold(w, "by"):
				byDepth = depth
				prev = prevOther
			case strings.EqualFold(w, "any") || strings.EqualFold(w, "all") || strings.EqualFold(w, "some"):
				prev = prevQuant
			default:
				prev = prevOther
			}
		case c == '(' || c == '[' || c == ',':
			if c == '(' {
				depth++
			}
			lx.pos++
			switch {
			case c == '(' && (prev == prevQuant || prev == prevArray):
				// ANY($1) takes an array: a number there, which
				// PostgreSQL refuses, must stay one.
				prev = prevArray
			case c != '(' || prev != prevMinus:
				prev = prevOp // -(5) is folded like -5
			}
		case c == ')' || c == ']':
			if c == ')' {
				depth--
				if byDepth > depth {
					byDepth = -1
				}
			}
			lx.pos++
			prev = prevOther
		case c == ';':
			lx.pos++
			byDepth = -1
			prev = prevOp
		case c == '-':
			lx.pos++
			prev = prevMinus
		case strings.IndexByte("+*/<>=~!@#%^&|`?:", c) >= 0:
			lx.pos++
			prev = prevOp
		default:
			lx.pos++
			prev = prevOther
		}
	}
	if len(lits) == n0 {
		return dst[:d0], lits, false
	}
	return append(dst, s[copied:]...), lits, true
}

// scanNumber returns the end of the numeric literal at s[i:]: digits, a
// fraction, an exponent.
func scanNumber(s string, i int) int {
	digits := func() {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	digits()
	if i < len(s) && s[i] == '.' && !(i+1 < len(s) && s[i+1] == '.') {
		i++
		digits()
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && s[j] >= '0' && s[j] <= '9' {
			i = j
			digits()
		}
	}
	return i
}

// keywordBefore reports whether a literal right after keyword w may be
// replaced by a parameter.
func keywordBefore(w string) bool {
	if len(w) < 2 || len(w) > 9 {
		return false
	}
	for _, kw := range [...]string{"select", "where", "and", "or", "not", "like", "ilike", "between", "when", "then", "else", "limit", "offset", "returning"} {
		if strings.EqualFold(w, kw) {
			return true
		}
	}
	return false
}

// endsByList reports whether keyword w ends an ORDER BY or GROUP BY list.
func endsByList(w string) bool {
	for _, kw := range [...]string{"limit", "offset", "fetch", "having", "window", "for", "union", "intersect", "except", "returning", "order"} {
		if strings.EqualFold(w, kw) {
			return true
		}
	}
	return false
}

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}
