package parser

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Kind is what a statement does to session or transaction state.
type Kind uint8

const (
	// Other statements change no state the proxy tracks.
	Other Kind = iota
	// Begin starts a transaction block (BEGIN, START TRANSACTION).
	Begin
	// Commit ends a transaction block and keeps its effects (COMMIT, END,
	// PREPARE TRANSACTION). Chain is set for COMMIT AND CHAIN.
	Commit
	// Rollback ends a transaction block and drops its effects. Chain is set
	// for ROLLBACK AND CHAIN.
	Rollback
	// Savepoint sets a savepoint; Name holds it.
	Savepoint
	// RollbackTo rolls back to the savepoint in Name.
	RollbackTo
	// Release releases the savepoint in Name.
	Release
	// Set changes the session value of the setting in Name.
	Set
	// SetLocal changes a setting for the current transaction only (SET LOCAL,
	// SET TRANSACTION, SET CONSTRAINTS).
	SetLocal
	// Reset returns the setting in Name to its session default.
	Reset
	// ResetAll returns every setting to its session default.
	ResetAll
	// DiscardAll is DISCARD ALL: the session is as new.
	DiscardAll
	// Deallocate drops the SQL prepared statement in Name.
	Deallocate
	// DeallocateAll drops every prepared statement.
	DeallocateAll
	// SessionState creates state that outlives the transaction and that the
	// proxy cannot move to another backend: temporary tables, LISTEN, SQL
	// PREPARE, cursors WITH HOLD, session advisory locks, set_config, LOAD.
	SessionState
)

var kindNames = [...]string{"other", "begin", "commit", "rollback", "savepoint", "rollback to", "release",
	"set", "set local", "reset", "reset all", "discard all", "deallocate", "deallocate all", "session state"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Statement is one statement of a query string.
type Statement struct {
	Kind Kind
	// Text is the statement without its terminating semicolon.
	Text string
	// Name is the setting (lower case, canonical: "timezone" for SET TIME
	// ZONE), savepoint or prepared statement the statement names.
	Name string
	// Chain is set for COMMIT/ROLLBACK AND CHAIN, which open a new block.
	Chain bool
}

// Classify splits sql into statements and classifies each. It returns nil
// when no statement changes state the proxy tracks, which is the common case
// and costs no allocation; otherwise it returns every statement, in order,
// so that the i-th CommandComplete of the query belongs to the i-th entry.
func Classify(sql string) []Statement {
	var lx lexer
	lx.init(sql)
	interesting, needParser := false, false
	n := 0
	for lx.next() {
		n++
		if lx.kind != Other {
			interesting = true
		}
		if lx.atomic {
			needParser = true
		}
	}
	if !interesting {
		return nil
	}
	if needParser {
		// A SQL-standard function body (BEGIN ATOMIC ... END) holds
		// semicolons the lexer cannot see past; let PostgreSQL's own
		// scanner split the string.
		if parts, err := pg_query.SplitWithParser(sql, true); err == nil {
			out := make([]Statement, 0, len(parts))
			for _, p := range parts {
				var l2 lexer
				l2.init(p)
				if l2.next() {
					st := l2.statement()
					st.Text = strings.TrimSpace(p) // the part is one statement
					out = append(out, st)
				}
			}
			return out
		}
	}
	out := make([]Statement, 0, n)
	lx.init(sql)
	for lx.next() {
		out = append(out, lx.statement())
	}
	return out
}

// First classifies the first statement of sql only; it is meant for the
// text of a prepared statement, which holds one statement.
func First(sql string) Statement {
	var lx lexer
	lx.init(sql)
	if !lx.next() {
		return Statement{}
	}
	return lx.statement()
}

// lexer walks a query string statement by statement. For each statement it
// records the first few words, which is all classification needs, and
// whether the statement calls functions that create session state.
type lexer struct {
	src string
	pos int

	// Current statement.
	start, end int
	words      [8]word
	nwords     int
	kind       Kind
	name       string
	chain      bool
	atomic     bool
	sessionFn  bool
	intoTemp   bool
}

type word struct {
	text   string // as written; compare with is()
	quoted bool
}

func (lx *lexer) init(s string) { *lx = lexer{src: s} }

func (lx *lexer) statement() Statement {
	return Statement{Kind: lx.kind, Text: strings.TrimSpace(lx.src[lx.start:lx.end]), Name: lx.name, Chain: lx.chain}
}

// next scans the next non-empty statement and classifies it.
func (lx *lexer) next() bool {
	for lx.pos < len(lx.src) {
		lx.start = lx.pos
		lx.nwords, lx.kind, lx.name, lx.chain, lx.atomic, lx.sessionFn, lx.intoTemp = 0, Other, "", false, false, false, false
		tokens := lx.scanStatement()
		if tokens == 0 {
			continue
		}
		lx.classify()
		return true
	}
	return false
}

// scanStatement advances past one statement and its semicolon, returning how
// many tokens it held.
func (lx *lexer) scanStatement() int {
	s := lx.src
	tokens, depth := 0, 0
	prevInto := false
	for lx.pos < len(s) {
		c := s[lx.pos]
		switch {
		case c == ';' && depth == 0:
			lx.end = lx.pos
			lx.pos++
			return tokens
		case lx.skipSpace():
			continue
		case c == '(':
			depth++
			lx.pos++
		case c == ')':
			if depth > 0 {
				depth--
			}
			lx.pos++
		case c == '\'':
			lx.skipQuoted('\'', false)
		case c == '"':
			begin := lx.pos + 1
			lx.skipQuoted('"', false)
			text := strings.ReplaceAll(s[begin:max(begin, lx.pos-1)], `""`, `"`)
			lx.addWord(word{text: text, quoted: true})
		case c == '$' && lx.dollarQuote():
		case isIdentStart(c):
			begin := lx.pos
			// Dotted names (myapp.user_id) stay one word.
			for lx.pos < len(s) && (isIdentChar(s[lx.pos]) || s[lx.pos] == '.') {
				lx.pos++
			}
			// E'...' escape strings: the quote handler looks back at the E.
			if lx.pos < len(s) && s[lx.pos] == '\'' && lx.pos-begin == 1 && (c == 'e' || c == 'E') {
				lx.skipQuoted('\'', true)
				tokens++
				continue
			}
			w := s[begin:lx.pos]
			lx.addWord(word{text: w})
			switch {
			case strings.EqualFold(w, "atomic"):
				lx.atomic = true
			case len(w) >= 10 && (strings.EqualFold(w, "set_config") || strings.EqualFold(w, "pg_advisory_lock") ||
				strings.EqualFold(w, "pg_advisory_lock_shared") || strings.EqualFold(w, "pg_try_advisory_lock") ||
				strings.EqualFold(w, "pg_try_advisory_lock_shared")):
				lx.sessionFn = true
			case strings.EqualFold(w, "temp") || strings.EqualFold(w, "temporary"):
				if prevInto {
					lx.intoTemp = true
				}
			}
			prevInto = strings.EqualFold(w, "into")
			tokens++
			continue
		default:
			lx.pos++
		}
		prevInto = false
		tokens++
	}
	lx.end = lx.pos
	return tokens
}

func (lx *lexer) addWord(w word) {
	if lx.nwords < len(lx.words) {
		lx.words[lx.nwords] = w
		lx.nwords++
	}
}

// skipSpace advances past the white space character or the comment at
// lx.pos, and reports whether there was one.
func (lx *lexer) skipSpace() bool {
	s := lx.src
	switch c := s[lx.pos]; {
	case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
		lx.pos++
	case c == '-' && lx.pos+1 < len(s) && s[lx.pos+1] == '-':
		for lx.pos < len(s) && s[lx.pos] != '\n' {
			lx.pos++
		}
	case c == '/' && lx.pos+1 < len(s) && s[lx.pos+1] == '*':
		lx.skipBlockComment()
	default:
		return false
	}
	return true
}

func (lx *lexer) skipBlockComment() {
	s, depth := lx.src, 0
	for lx.pos < len(s) {
		switch {
		case s[lx.pos] == '/' && lx.pos+1 < len(s) && s[lx.pos+1] == '*':
			depth++
			lx.pos += 2
		case s[lx.pos] == '*' && lx.pos+1 < len(s) && s[lx.pos+1] == '/':
			depth--
			lx.pos += 2
			if depth == 0 {
				return
			}
		default:
			lx.pos++
		}
	}
}

// skipQuoted skips a '...' or "..." token starting at lx.pos; doubled quotes
// stay inside, and backslashes escape when backslash is set (E'...').
func (lx *lexer) skipQuoted(q byte, backslash bool) {
	s := lx.src
	lx.pos++
	for lx.pos < len(s) {
		c := s[lx.pos]
		switch {
		case backslash && c == '\\':
			lx.pos += 2
			continue
		case c == q:
			if lx.pos+1 < len(s) && s[lx.pos+1] == q {
				lx.pos += 2
				continue
			}
			lx.pos++
			return
		}
		lx.pos++
	}
}

// dollarQuote skips a $tag$...$tag$ string at lx.pos and reports whether
// there was one ($1 parameters and lone dollars are not).
func (lx *lexer) dollarQuote() bool {
	s := lx.src
	i := lx.pos + 1
	for i < len(s) && s[i] != '$' {
		if !isIdentChar(s[i]) || (i == lx.pos+1 && s[i] >= '0' && s[i] <= '9') {
			return false
		}
		i++
	}
	if i >= len(s) {
		return false
	}
	tag := s[lx.pos : i+1]
	if end := strings.Index(s[i+1:], tag); end >= 0 {
		lx.pos = i + 1 + end + len(tag)
	} else {
		lx.pos = len(s)
	}
	return true
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') || c == '$' }

// w returns the i-th word of the statement in lower case (quoted words as
// written), or "". It allocates only for words with upper-case letters, and
// is used only once a statement is known to be of interest.
func (lx *lexer) w(i int) string {
	if i >= lx.nwords {
		return ""
	}
	if lx.words[i].quoted {
		return lx.words[i].text
	}
	return strings.ToLower(lx.words[i].text)
}

// is reports whether the i-th word is the unquoted keyword kw (lower case).
func (lx *lexer) is(i int, kw string) bool {
	return i < lx.nwords && !lx.words[i].quoted && strings.EqualFold(lx.words[i].text, kw)
}

func (lx *lexer) classify() {
	if !lx.interestingFirstWord() {
		if lx.sessionFn || lx.intoTemp {
			lx.kind = SessionState
		}
		return
	}
	switch lx.w(0) {
	case "begin":
		lx.kind = Begin
	case "start":
		if lx.w(1) == "transaction" {
			lx.kind = Begin
		}
	case "commit", "end":
		if lx.w(1) == "prepared" {
			return
		}
		lx.kind = Commit
		lx.chain = lx.hasChain()
	case "rollback", "abort":
		if lx.w(1) == "prepared" {
			return
		}
		i := 1
		if w := lx.w(i); w == "work" || w == "transaction" {
			i++
		}
		if lx.w(i) == "to" {
			i++
			if lx.w(i) == "savepoint" {
				i++
			}
			lx.kind, lx.name = RollbackTo, lx.w(i)
			return
		}
		lx.kind = Rollback
		lx.chain = lx.hasChain()
	case "savepoint":
		lx.kind, lx.name = Savepoint, lx.w(1)
	case "release":
		i := 1
		if lx.w(i) == "savepoint" {
			i++
		}
		lx.kind, lx.name = Release, lx.w(i)
	case "prepare":
		if lx.w(1) == "transaction" {
			lx.kind = Commit
			return
		}
		lx.kind, lx.name = SessionState, lx.w(1)
	case "set":
		lx.classifySet()
	case "reset":
		switch lx.w(1) {
		case "all":
			lx.kind = ResetAll
		default:
			lx.kind, lx.name = Reset, settingName(lx.words[1:lx.nwords])
		}
	case "discard":
		if lx.w(1) == "all" {
			lx.kind = DiscardAll
		}
	case "deallocate":
		i := 1
		if lx.w(i) == "prepare" {
			i++
		}
		if lx.w(i) == "all" && !lx.words[i].quoted {
			lx.kind = DeallocateAll
		} else {
			lx.kind, lx.name = Deallocate, lx.w(i)
		}
	case "listen", "load":
		lx.kind = SessionState
	case "declare":
		for i := 1; i < lx.nwords; i++ {
			if lx.w(i) == "hold" && lx.w(i-1) == "with" {
				lx.kind = SessionState
			}
		}
		if lx.kind == Other && strings.Contains(strings.ToLower(lx.src[lx.start:lx.end]), "with hold") {
			lx.kind = SessionState
		}
	case "create":
		for i := 1; i < lx.nwords && i < 5; i++ {
			if w := lx.w(i); w == "temp" || w == "temporary" {
				lx.kind = SessionState
			}
		}
	}
	if lx.kind == Other && (lx.sessionFn || lx.intoTemp) {
		lx.kind = SessionState
	}
}

// firstWords are the statements classify looks at; everything else
// (SELECT, INSERT, UPDATE, ...) is decided without allocating.
var firstWords = [...]string{"begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release",
	"prepare", "set", "reset", "discard", "deallocate", "listen", "load", "declare", "create"}

func (lx *lexer) interestingFirstWord() bool {
	for _, kw := range firstWords {
		if lx.is(0, kw) {
			return true
		}
	}
	return false
}

func (lx *lexer) hasChain() bool {
	for i := 1; i < lx.nwords; i++ {
		if lx.w(i) == "chain" && lx.w(i-1) != "no" {
			return true
		}
	}
	return false
}

func (lx *lexer) classifySet() {
	i := 1
	switch lx.w(i) {
	case "local":
		lx.kind, lx.name = SetLocal, settingName(lx.words[2:lx.nwords])
		return
	case "session":
		if w := lx.w(i + 1); w == "characteristics" || w == "authorization" {
			lx.kind, lx.name = Set, "session "+w
			if w == "authorization" {
				lx.name = "session_authorization"
			}
			return
		}
		i++
	case "transaction", "constraints":
		lx.kind = SetLocal
		return
	}
	lx.kind, lx.name = Set, settingName(lx.words[i:lx.nwords])
}

// settingName turns the words after SET/RESET into the setting's canonical
// name.
func settingName(ws []word) string {
	if len(ws) == 0 {
		return ""
	}
	lower := func(w word) string {
		if w.quoted {
			return w.text
		}
		return strings.ToLower(w.text)
	}
	first, second := lower(ws[0]), ""
	if len(ws) > 1 {
		second = lower(ws[1])
	}
	switch {
	case ws[0].quoted:
		return first
	case first == "time" && second == "zone":
		return "timezone"
	case first == "names":
		return "client_encoding"
	case first == "schema":
		return "search_path"
	case first == "xml" && second == "option":
		return "xmloption"
	case first == "session" && second == "authorization":
		return "session_authorization"
	default:
		return first
	}
}
