package parser

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// CopyDirection says where a COPY statement's data goes.
type CopyDirection uint8

const (
	// CopyFromStdin is COPY table FROM STDIN: the client sends CopyData.
	CopyFromStdin CopyDirection = iota
	// CopyToStdout is COPY table TO STDOUT or COPY (query) TO STDOUT.
	CopyToStdout
	// CopyFromServer is COPY FROM a file or a program on the server.
	CopyFromServer
	// CopyToServer is COPY TO a file or a program on the server.
	CopyToServer
)

var copyDirectionNames = [...]string{"from stdin", "to stdout", "from server file or program", "to server file or program"}

// String returns the direction as COPY's syntax says it.
func (d CopyDirection) String() string {
	if int(d) < len(copyDirectionNames) {
		return copyDirectionNames[d]
	}
	return "unknown"
}

// CopyFormat is the FORMAT option of COPY.
type CopyFormat uint8

const (
	// CopyText is the default format: tab-separated, backslash escapes.
	CopyText CopyFormat = iota
	// CopyCSV is FORMAT csv.
	CopyCSV
	// CopyBinary is FORMAT binary.
	CopyBinary
)

var copyFormatNames = [...]string{"text", "csv", "binary"}

// String returns the format's name as COPY spells it.
func (f CopyFormat) String() string {
	if int(f) < len(copyFormatNames) {
		return copyFormatNames[f]
	}
	return "unknown"
}

// CopyHeader is the HEADER option of COPY.
type CopyHeader uint8

const (
	// CopyHeaderNone: the data has no header line (HEADER false, the
	// default).
	CopyHeaderNone CopyHeader = iota
	// CopyHeaderSkip: the first line is a header that the server skips
	// (HEADER true).
	CopyHeaderSkip
	// CopyHeaderMatch: the first line is a header whose names the server
	// checks against the table's columns (HEADER match).
	CopyHeaderMatch
)

// CopyOptions are the options of a COPY statement that say how its data
// is laid out, with PostgreSQL's defaults filled in. It is a plain value.
type CopyOptions struct {
	// Format is text (the default), csv or binary.
	Format CopyFormat
	// Delimiter separates fields: tab for text, ',' for csv.
	Delimiter byte
	// Null is the string that stands for NULL: `\N` for text, the empty
	// string for csv.
	Null string
	// Default is the DEFAULT marker (PostgreSQL 16+), valid when
	// HasDefault: a field equal to it takes the column's default.
	Default    string
	HasDefault bool
	// Header says whether the first line is a header.
	Header CopyHeader
	// Quote and Escape are csv's quote and escape characters; both '"' by
	// default, Escape defaulting to Quote.
	Quote, Escape byte
	// ForceNotNull, ForceNull and ForceQuote list the columns named by
	// FORCE_NOT_NULL, FORCE_NULL and FORCE_QUOTE; the *All flags are set
	// for the "*" form.
	ForceNotNull, ForceNull, ForceQuote          []string
	ForceNotNullAll, ForceNullAll, ForceQuoteAll bool
	// Freeze is the FREEZE option.
	Freeze bool
	// Encoding is the ENCODING option, as written, or "" when absent (the
	// data is then in the session's client_encoding).
	Encoding string
	// OnError and LogVerbosity are PostgreSQL 17's ON_ERROR and
	// LOG_VERBOSITY, as written, or "".
	OnError, LogVerbosity string
}

// CopyStmt describes a COPY statement. It is a plain value.
type CopyStmt struct {
	// Direction says where the data goes.
	Direction CopyDirection
	// Table is the table copied; the zero TableRef for COPY (query) TO.
	Table TableRef
	// Columns is the column list as written (unquoted names lower case),
	// or nil when the statement has none: then the data has every column
	// of the table in table order.
	Columns []string
	// Query is set for COPY (query) TO STDOUT.
	Query bool
	// Where is set when COPY FROM has a WHERE clause; each server filters
	// the rows it receives.
	Where bool
	// Options are the format options, defaults filled in.
	Options CopyOptions
}

// ParseCopy parses sql, a single COPY statement, and describes it. It
// returns an error if sql is not exactly one COPY statement or if its
// options are ones PostgreSQL would refuse or pgshard does not know (an
// option it does not know might change how the data is laid out).
func ParseCopy(sql string) (CopyStmt, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return CopyStmt{}, fmt.Errorf("parse: %w", err)
	}
	if len(tree.Stmts) != 1 {
		return CopyStmt{}, errors.New("parse copy: expected one statement")
	}
	c := tree.Stmts[0].GetStmt().GetCopyStmt()
	if c == nil {
		return CopyStmt{}, errors.New("parse copy: not a COPY statement")
	}
	return describeCopy(c)
}

// KeyIndex returns the 0-based position of column in the data of a COPY
// FROM: its position in Columns, or, when the statement has no column
// list, in tableColumns (the table's columns in table order, which the
// caller knows from the catalog). ok is false when column is not copied.
func (c *CopyStmt) KeyIndex(column string, tableColumns []string) (i int, ok bool) {
	cols := c.Columns
	if cols == nil {
		cols = tableColumns
	}
	for i, name := range cols {
		if name == column {
			return i, true
		}
	}
	return -1, false
}

// Splittable returns nil if the data of the statement can be split row by
// row with a CopySplitter, and otherwise an error saying why not: only
// COPY table FROM STDIN sends data through the proxy.
func (c *CopyStmt) Splittable() error {
	switch c.Direction {
	case CopyFromStdin:
		return nil
	case CopyToStdout:
		return errors.New("COPY TO STDOUT sends data to the client; it is not split")
	default:
		return errors.New("COPY from or to a file or program on the server cannot be split across shards; use COPY FROM STDIN (psql's \\copy)")
	}
}

func describeCopy(n *pg_query.CopyStmt) (CopyStmt, error) {
	var c CopyStmt
	switch {
	case n.Filename != "" || n.IsProgram:
		c.Direction = CopyToServer
		if n.IsFrom {
			c.Direction = CopyFromServer
		}
	case n.IsFrom:
		c.Direction = CopyFromStdin
	default:
		c.Direction = CopyToStdout
	}
	if n.Relation != nil {
		c.Table = tableRef(n.Relation)
	}
	c.Query = n.Query != nil
	c.Where = n.WhereClause != nil
	for _, a := range n.Attlist {
		c.Columns = append(c.Columns, a.GetString_().GetSval())
	}
	opts, err := copyOptions(n.Options)
	c.Options = opts
	return c, err
}

// copyOptions reads COPY's DefElem options as PostgreSQL's
// ProcessCopyOptions does, for both the WITH (...) and the old syntax,
// which the grammar turns into the same DefElems.
func copyOptions(list []*pg_query.Node) (CopyOptions, error) {
	var o CopyOptions
	var delim, null, quote, escape *string
	seen := map[string]bool{}
	for _, n := range list {
		d := n.GetDefElem()
		if d == nil {
			continue
		}
		name := d.Defname
		if seen[name] {
			return o, fmt.Errorf("COPY option %s given more than once", name)
		}
		seen[name] = true
		switch name {
		case "format":
			switch s := defString(d); s {
			case "text":
				o.Format = CopyText
			case "csv":
				o.Format = CopyCSV
			case "binary":
				o.Format = CopyBinary
			default:
				return o, fmt.Errorf("COPY format %q not recognized", s)
			}
		case "freeze":
			b, err := defBool(d)
			if err != nil {
				return o, err
			}
			o.Freeze = b
		case "delimiter":
			s := defString(d)
			delim = &s
		case "null":
			s := defString(d)
			null = &s
		case "default":
			o.Default, o.HasDefault = defString(d), true
		case "header":
			if s := strings.ToLower(defString(d)); d.Arg != nil && d.Arg.GetString_() != nil && s == "match" {
				o.Header = CopyHeaderMatch
				break
			}
			b, err := defBool(d)
			if err != nil {
				return o, err
			}
			if b {
				o.Header = CopyHeaderSkip
			}
		case "quote":
			s := defString(d)
			quote = &s
		case "escape":
			s := defString(d)
			escape = &s
		case "force_quote":
			o.ForceQuote, o.ForceQuoteAll = defColumns(d)
		case "force_not_null":
			o.ForceNotNull, o.ForceNotNullAll = defColumns(d)
		case "force_null":
			o.ForceNull, o.ForceNullAll = defColumns(d)
		case "encoding":
			o.Encoding = defString(d)
		case "on_error":
			o.OnError = defString(d)
		case "log_verbosity":
			o.LogVerbosity = defString(d)
		default:
			return o, fmt.Errorf("COPY option %q is not known to pgshard", name)
		}
	}
	// Defaults and checks, as ProcessCopyOptions.
	csv := o.Format == CopyCSV
	if o.Format == CopyBinary && (delim != nil || null != nil || o.HasDefault) {
		return o, errors.New("cannot specify DELIMITER, NULL or DEFAULT in BINARY mode")
	}
	o.Delimiter, o.Null = '\t', `\N`
	if csv {
		o.Delimiter, o.Null = ',', ""
	}
	if delim != nil {
		if len(*delim) != 1 {
			return o, errors.New("COPY delimiter must be a single one-byte character")
		}
		o.Delimiter = (*delim)[0]
	}
	if null != nil {
		o.Null = *null
	}
	if !csv && (quote != nil || escape != nil) {
		return o, errors.New("COPY QUOTE and ESCAPE are available only in CSV mode")
	}
	if csv {
		o.Quote = '"'
		if quote != nil {
			if len(*quote) != 1 {
				return o, errors.New("COPY quote must be a single one-byte character")
			}
			o.Quote = (*quote)[0]
		}
		o.Escape = o.Quote
		if escape != nil {
			if len(*escape) != 1 {
				return o, errors.New("COPY escape must be a single one-byte character")
			}
			o.Escape = (*escape)[0]
		}
		if o.Delimiter == o.Quote {
			return o, errors.New("COPY delimiter and quote must be different")
		}
	}
	if o.Delimiter == '\r' || o.Delimiter == '\n' || strings.ContainsAny(o.Null, "\r\n") {
		return o, errors.New("COPY delimiter and NULL cannot be newline or carriage return")
	}
	if !csv && strings.IndexByte(`\.abcdefghijklmnopqrstuvwxyz0123456789`, o.Delimiter) >= 0 {
		return o, fmt.Errorf("COPY delimiter cannot be %q", o.Delimiter)
	}
	if o.Format == CopyBinary && o.Header != CopyHeaderNone {
		return o, errors.New("cannot specify HEADER in BINARY mode")
	}
	if !csv && (o.ForceNotNull != nil || o.ForceNull != nil || o.ForceQuote != nil ||
		o.ForceNotNullAll || o.ForceNullAll || o.ForceQuoteAll) {
		return o, errors.New("COPY FORCE_QUOTE, FORCE_NOT_NULL and FORCE_NULL are available only in CSV mode")
	}
	if o.HasDefault && o.Null == o.Default {
		return o, errors.New("COPY NULL and DEFAULT cannot be the same")
	}
	return o, nil
}

func defString(d *pg_query.DefElem) string {
	switch a := d.Arg.GetNode().(type) {
	case *pg_query.Node_String_:
		return a.String_.Sval
	case *pg_query.Node_Integer:
		return strconv.Itoa(int(a.Integer.Ival))
	case *pg_query.Node_Boolean:
		return strconv.FormatBool(a.Boolean.Boolval)
	case *pg_query.Node_Float:
		return a.Float.Fval
	}
	return ""
}

// defBool is PostgreSQL's defGetBoolean.
func defBool(d *pg_query.DefElem) (bool, error) {
	switch a := d.Arg.GetNode().(type) {
	case nil:
		return true, nil
	case *pg_query.Node_Boolean:
		return a.Boolean.Boolval, nil
	case *pg_query.Node_Integer:
		switch a.Integer.Ival {
		case 0:
			return false, nil
		case 1:
			return true, nil
		}
	case *pg_query.Node_String_:
		switch strings.ToLower(a.String_.Sval) {
		case "true", "on", "t", "tr", "tru", "yes", "y", "ye":
			return true, nil
		case "false", "off", "f", "fa", "fal", "fals", "no", "n", "of":
			return false, nil
		}
	}
	return false, fmt.Errorf("COPY option %s requires a Boolean value", d.Defname)
}

func defColumns(d *pg_query.DefElem) (cols []string, all bool) {
	if d.Arg.GetAStar() != nil {
		return nil, true
	}
	for _, n := range d.Arg.GetList().GetItems() {
		cols = append(cols, n.GetString_().GetSval())
	}
	return cols, false
}
