package parser

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// CopySink receives what a CopySplitter cuts out of the data of a COPY
// FROM STDIN. The slices it is given are valid only during the call (they
// point into the caller's CopyData payload or the splitter's buffer): a
// sink that keeps them must copy them. Returning an error stops the
// splitter, which returns that error from Write or Close.
type CopySink interface {
	// CopyRow receives one data row, as its exact original bytes including
	// its line terminator (the last row of text or csv data may have none,
	// and a text row cut short by the end-of-data marker \. keeps the
	// marker, which ends that shard's data too), to be forwarded unchanged
	// to the shard key says. key is the value of the shard key field,
	// decoded (escapes and quotes removed) for text and csv, the field's
	// bytes in the type's binary send format for binary; keyNull is set
	// when the field is NULL.
	CopyRow(row, key []byte, keyNull bool) error
	// CopyAll receives bytes that every shard's COPY must receive, in
	// order with the rows: the HEADER line of text and csv data (each
	// shard's COPY ... HEADER expects one, and checks it with HEADER
	// match), and the signature header and the trailer of binary data.
	CopyAll(data []byte) error
}

// CopyError is malformed or unsplittable COPY data. Code is the SQLSTATE
// PostgreSQL would report: 22P04 bad_copy_file_format for malformed data,
// 54000 program_limit_exceeded for a row longer than the splitter's limit,
// 0A000 feature_not_supported for data the splitter cannot route.
type CopyError struct {
	Code    string
	Message string
	Hint    string
	// Line is the 1-based line (text, csv: the header counts) or tuple
	// (binary) number of the data where the error was found, as in
	// PostgreSQL's "COPY t, line N" context; 0 when not known.
	Line int64
}

// Error returns the message with the line number.
func (e *CopyError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s (COPY data line %d)", e.Message, e.Line)
	}
	return e.Message
}

// SQLState returns Code.
func (e *CopyError) SQLState() string { return e.Code }

// SQLSTATEs of CopyError.
const (
	CodeBadCopyFileFormat     = "22P04"
	CodeProgramLimitExceeded  = "54000"
	CodeFeatureNotSupported   = "0A000"
	copyEndMarkerCorrupt      = "end-of-copy marker corrupt"
	copyEndMarkerNewlineStyle = "end-of-copy marker does not match previous newline style"
)

// CopySplitterConfig says how to split the data of one COPY FROM STDIN.
type CopySplitterConfig struct {
	// Options are the statement's format options (CopyStmt.Options).
	Options CopyOptions
	// KeyColumn is the 0-based position of the shard key among the fields
	// of each row (CopyStmt.KeyIndex).
	KeyColumn int
	// KeyName is the shard key column's name, to apply FORCE_NULL and
	// FORCE_NOT_NULL and to name the column in errors.
	KeyName string
	// MaxRowLen bounds the bytes of one row (with its line terminator),
	// of the csv or text header line, and of the binary header: a longer
	// one is an error (54000). It bounds the splitter's memory. Required.
	MaxRowLen int
}

// CopySplitter cuts the data of a COPY FROM STDIN into rows and finds the
// shard key of each, the way PostgreSQL 15 reads it (TestCopySplitterOracle
// checks that against a real server; PostgreSQL 18 is stricter about \.),
// so that each row can be forwarded unchanged to its shard. It buffers only a row that
// spans CopyData messages, and decodes a key into its own buffer only when
// the key holds escapes or quotes; otherwise it allocates nothing.
//
// The data must be in an encoding in which bytes below 0x80 always stand
// for ASCII characters (UTF8, the LATIN and ISO 8859 encodings, EUC_*,
// WIN*, ...); it must not be in SJIS, BIG5, GBK, UHC or GB18030, whose
// multibyte characters may hold a byte equal to a backslash or delimiter
// (see CopyEncodingSplittable).
//
// A CopySplitter belongs to one session goroutine; it is not safe for
// concurrent use.
type CopySplitter struct {
	cfg  CopySplitterConfig
	sink CopySink
	opts CopyOptions
	csv  bool
	bin  bool

	// keyNotNull, keyForceNull apply FORCE_NOT_NULL and FORCE_NULL to the
	// key column.
	keyNotNull, keyForceNull bool

	special [256]bool // bytes the text/csv scanner must look at

	carry  []byte // the start of a row that spans messages
	keyBuf []byte // a decoded key
	lineNo int64  // lines (tuples) completed
	ended  bool   // end of data seen: \. or the binary trailer
	err    error  // sticky

	// Text and csv line scanner state, as CopyReadLineText's.
	st         scanState
	eol        eolType
	firstChar  bool
	inQuote    bool
	lastWasEsc bool
	lineEsc    byte // escape for the line scanner: 0 when it is the quote
	header     bool // the next line is the header
	bsPos      int  // line offset of the backslash of a pending \.
	tail       int  // bytes at the end of a finished line that are not content

	// Binary.
	binHeader  bool // the binary header has been passed on
	keyOff     int  // offset of the key field in a binary tuple, -1 for NULL
	keyLen     int
	binTrailer bool // the unit just measured is the trailer
}

type scanState uint8

const (
	stNormal    scanState = iota
	stCR                  // saw an unquoted \r, need the next byte
	stBackslash           // saw a \ that may start \.
	stDot                 // saw \.
	stDotCR               // saw \.\r with \r\n line ends
)

type eolType uint8

const (
	eolUnknown eolType = iota
	eolNL
	eolCR
	eolCRNL
)

// CopyEncodingSplittable reports whether COPY data in the named encoding
// (a client_encoding or ENCODING option value) can be split: false for the
// client-only encodings whose multibyte characters embed ASCII bytes.
func CopyEncodingSplittable(name string) bool {
	n := strings.NewReplacer("_", "", "-", "").Replace(strings.ToUpper(name))
	switch n {
	case "SJIS", "SHIFTJIS", "SHIFTJIS2004", "MSKANJI", "WIN932", "WINDOWS932",
		"BIG5", "WIN950", "WINDOWS950", "GBK", "WIN936", "WINDOWS936", "UHC", "WIN949", "WINDOWS949", "GB18030":
		return false
	}
	return true
}

// NewCopySplitter returns a splitter that passes what it cuts to sink. It
// returns a *CopyError (0A000) for options it cannot split by.
func NewCopySplitter(cfg CopySplitterConfig, sink CopySink) (*CopySplitter, error) {
	o := cfg.Options
	if cfg.MaxRowLen <= 0 {
		return nil, errors.New("copy splitter: MaxRowLen must be positive")
	}
	if cfg.KeyColumn < 0 {
		return nil, errors.New("copy splitter: KeyColumn must not be negative")
	}
	if o.Encoding != "" && !CopyEncodingSplittable(o.Encoding) {
		return nil, &CopyError{Code: CodeFeatureNotSupported,
			Message: fmt.Sprintf("COPY data in encoding %s cannot be split across shards", o.Encoding),
			Hint:    "Send the data in UTF8."}
	}
	s := &CopySplitter{cfg: cfg, sink: sink, opts: o, csv: o.Format == CopyCSV, bin: o.Format == CopyBinary,
		firstChar: true, header: o.Header != CopyHeaderNone && o.Format != CopyBinary}
	if s.csv {
		s.keyNotNull = o.ForceNotNullAll || contains(o.ForceNotNull, cfg.KeyName)
		s.keyForceNull = o.ForceNullAll || contains(o.ForceNull, cfg.KeyName)
		// CopyReadLineText ignores the escape when it is the quote.
		if o.Escape != o.Quote {
			s.lineEsc = o.Escape
		}
		s.special[o.Quote] = true
		s.special[s.lineEsc] = true
	} else {
		s.special['\\'] = true
	}
	s.special['\r'] = true
	s.special['\n'] = true
	return s, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Ended reports whether the data has ended: the text end-of-data marker
// \. or the binary trailer has been seen. PostgreSQL ignores text and csv
// data after the marker, and so does Write.
func (s *CopySplitter) Ended() bool { return s.ended }

// Write takes the payload of the next CopyData message, which need not
// start or end at a row boundary, and passes every row it completes to the
// sink, in order. It returns the sink's error, or a *CopyError for
// malformed data; after an error the splitter is unusable and the caller
// should fail the COPY on every shard (CopyFail). data is not retained.
func (s *CopySplitter) Write(data []byte) error {
	if s.err != nil {
		return s.err
	}
	if s.ended {
		if s.bin && len(data) > 0 {
			return s.fail(s.errorf("received copy data after EOF marker"))
		}
		return nil
	}
	var err error
	if s.bin {
		err = s.writeBinary(data)
	} else {
		err = s.writeText(data)
	}
	if err != nil {
		return s.fail(err)
	}
	return nil
}

// Close is called at CopyDone. It passes on the last row if it has no line
// terminator (PostgreSQL accepts one) and returns a *CopyError if the data
// ends inside a row PostgreSQL would reject: an unterminated csv quoted
// field, a cut binary tuple, a corrupt \. marker.
func (s *CopySplitter) Close() error {
	if s.err != nil {
		return s.err
	}
	if s.ended {
		return nil
	}
	var err error
	if s.bin {
		err = s.closeBinary()
	} else {
		err = s.closeText()
	}
	if err != nil {
		return s.fail(err)
	}
	s.ended = true
	return nil
}

func (s *CopySplitter) fail(err error) error {
	s.err = err
	s.carry = nil
	return err
}

func (s *CopySplitter) errorf(format string, args ...any) *CopyError {
	return &CopyError{Code: CodeBadCopyFileFormat, Message: fmt.Sprintf(format, args...), Line: s.lineNo + 1}
}

func (s *CopySplitter) tooLong() *CopyError {
	return &CopyError{Code: CodeProgramLimitExceeded, Line: s.lineNo + 1,
		Message: fmt.Sprintf("COPY row is longer than pgshard's limit of %d bytes", s.cfg.MaxRowLen),
		Hint:    "Raise the proxy's COPY row limit or load long rows directly into their shard."}
}

// keep appends the unfinished start of a row to the carry buffer.
func (s *CopySplitter) keep(b []byte) error {
	if len(s.carry)+len(b) > s.cfg.MaxRowLen {
		return s.tooLong()
	}
	s.carry = append(s.carry, b...)
	return nil
}

// writeText scans data for line ends and passes on each complete line.
func (s *CopySplitter) writeText(data []byte) error {
	start := 0
	for start < len(data) {
		end, done, err := s.scan(data, start, len(s.carry)-start)
		if err != nil {
			return err
		}
		if !done {
			return s.keep(data[start:])
		}
		line := data[start:end]
		if len(s.carry) > 0 {
			if err := s.keep(line); err != nil {
				return err
			}
			line = s.carry
		}
		if err := s.line(line); err != nil {
			return err
		}
		s.carry = s.carry[:0]
		start = end
		if s.ended {
			return nil
		}
	}
	return nil
}

// scan runs CopyReadLineText's state machine over data from i, where base
// added to an index of data gives the offset in the current line. It
// returns the end of the line when done.
func (s *CopySplitter) scan(data []byte, i, base int) (end int, done bool, err error) {
	csv := s.csv
	for i < len(data) {
		switch s.st {
		case stNormal:
			if !s.firstChar {
				j := i
				for j < len(data) && !s.special[data[j]] {
					j++
				}
				if j > i {
					s.lastWasEsc = false
					i = j
					continue
				}
			}
			c := data[i]
			i++
			if csv {
				if s.inQuote && c == s.lineEsc {
					s.lastWasEsc = !s.lastWasEsc
				}
				if c == s.opts.Quote && !s.lastWasEsc {
					s.inQuote = !s.inQuote
				}
				if c != s.lineEsc {
					s.lastWasEsc = false
				}
			}
			if c == '\r' && (!csv || !s.inQuote) {
				switch s.eol {
				case eolUnknown, eolCRNL:
					s.st = stCR
					continue
				case eolNL:
					return 0, false, s.literalCR()
				}
				s.tail = 1
				return i, true, nil
			}
			if c == '\n' && (!csv || !s.inQuote) {
				if s.eol == eolCR || s.eol == eolCRNL {
					if csv {
						return 0, false, s.errorf("unquoted newline found in data")
					}
					return 0, false, s.errorf("literal newline found in data")
				}
				s.eol = eolNL
				s.tail = 1
				return i, true, nil
			}
			if c == '\\' && (!csv || s.firstChar) {
				s.st = stBackslash
				s.bsPos = base + i - 1
				continue
			}
			s.firstChar = false
		case stCR:
			s.st = stNormal
			if data[i] == '\n' {
				s.eol = eolCRNL
				s.tail = 2
				return i + 1, true, nil
			}
			if s.eol == eolCRNL {
				return 0, false, s.literalCR()
			}
			s.eol = eolCR
			s.tail = 1
			return i, true, nil
		case stBackslash:
			if data[i] == '.' {
				s.st = stDot
				i++
				continue
			}
			s.st = stNormal
			s.firstChar = false
			if !csv {
				i++ // the escaped byte, whatever it is
			}
		case stDot, stDotCR:
			c := data[i]
			i++
			if s.st == stDot && s.eol == eolCRNL {
				if c == '\r' {
					s.st = stDotCR
					continue
				}
				if c == '\n' && !csv {
					return 0, false, s.errorf(copyEndMarkerNewlineStyle)
				}
				if err := s.notEnd(".", c); err != nil {
					return 0, false, err
				}
				continue
			}
			if c != '\r' && c != '\n' {
				pre := "."
				if s.st == stDotCR {
					pre = ".\r"
				}
				if err := s.notEnd(pre, c); err != nil {
					return 0, false, err
				}
				continue
			}
			if s.eol == eolNL && c != '\n' || s.eol == eolCRNL && c != '\n' || s.eol == eolCR && c != '\r' {
				return 0, false, s.errorf(copyEndMarkerNewlineStyle)
			}
			s.st = stNormal
			s.ended = true
			s.tail = base + i - s.bsPos
			return i, true, nil
		}
	}
	return i, false, nil
}

func (s *CopySplitter) literalCR() error {
	if s.csv {
		return s.errorf("unquoted carriage return found in data")
	}
	return s.errorf("literal carriage return found in data")
}

// notEnd handles a \. that turned out not to end the data: an error in
// text mode; in csv mode the bytes after the backslash are data, scanned
// again as CopyReadLineText does. They cannot end the line.
func (s *CopySplitter) notEnd(pre string, c byte) error {
	if !s.csv {
		return s.errorf(copyEndMarkerCorrupt)
	}
	s.st = stNormal
	s.firstChar = false
	replay := [3]byte{}
	n := copy(replay[:], pre)
	replay[n] = c
	n++
	_, done, err := s.scan(replay[:n], 0, 0)
	if err != nil {
		return err
	}
	if done {
		return s.errorf("unexpected line end after \\.")
	}
	return nil
}

// closeText handles the end of the data in the middle of a line, as
// CopyReadLineText does at EOF.
func (s *CopySplitter) closeText() error {
	if s.st == stDot || s.st == stDotCR {
		// The byte after the marker is taken as '\0': corrupt in text
		// mode, data in csv mode.
		if !s.csv {
			return s.errorf(copyEndMarkerCorrupt)
		}
		pre := []byte(".")
		if s.st == stDotCR {
			pre = []byte(".\r")
		}
		s.st, s.firstChar = stNormal, false
		if _, _, err := s.scan(pre, 0, 0); err != nil {
			return err
		}
	}
	s.tail = 0
	if s.st == stCR {
		if s.eol == eolCRNL {
			return s.literalCR()
		}
		s.tail = 1
	}
	if len(s.carry) == 0 {
		return nil
	}
	if s.csv && s.inQuote {
		return s.errorf("unterminated CSV quoted field")
	}
	err := s.line(s.carry)
	s.carry = s.carry[:0]
	return err
}

// line passes on one line (s.tail bytes of it are its terminator or end
// marker) and resets the per-line scanner state.
func (s *CopySplitter) line(line []byte) error {
	s.st, s.firstChar, s.inQuote, s.lastWasEsc = stNormal, true, false, false
	if len(line) > s.cfg.MaxRowLen {
		return s.tooLong()
	}
	content := line[:len(line)-s.tail]
	defer func() { s.lineNo++ }()
	if s.header {
		s.header = false
		return s.sink.CopyAll(line)
	}
	if s.ended && len(content) == 0 {
		return nil // \. alone on its line
	}
	var key []byte
	var null bool
	var err error
	if s.csv {
		key, null, err = s.csvKey(content)
	} else {
		key, null, err = s.textKey(content)
	}
	if err != nil {
		return err
	}
	return s.sink.CopyRow(line, key, null)
}

func (s *CopySplitter) missingKey() error {
	if s.cfg.KeyName != "" {
		return s.errorf("missing data for column %q", s.cfg.KeyName)
	}
	return s.errorf("missing data for shard key field %d", s.cfg.KeyColumn+1)
}

func (s *CopySplitter) isDefault(raw []byte) error {
	if s.opts.HasDefault && string(raw) == s.opts.Default {
		return &CopyError{Code: CodeFeatureNotSupported, Line: s.lineNo + 1,
			Message: "the shard key of a COPY row cannot be the DEFAULT marker: pgshard cannot tell which shard the row belongs to"}
	}
	return nil
}

// textKey finds the key field of a text line as CopyReadAttributesText
// does and decodes it.
func (s *CopySplitter) textKey(line []byte) ([]byte, bool, error) {
	delim := s.opts.Delimiter
	pos := 0
	for field := 0; ; field++ {
		start := pos
		escaped := false
		found := false
		for pos < len(line) {
			c := line[pos]
			pos++
			if c == delim {
				found = true
				break
			}
			if c == '\\' {
				escaped = true
				if pos >= len(line) {
					break
				}
				pos++
			}
		}
		if field == s.cfg.KeyColumn {
			raw := line[start:pos]
			if found {
				raw = line[start : pos-1]
			}
			if string(raw) == s.opts.Null {
				return nil, true, nil
			}
			if err := s.isDefault(raw); err != nil {
				return nil, false, err
			}
			if !escaped {
				return raw, false, nil
			}
			s.keyBuf = unescapeText(s.keyBuf[:0], raw)
			return s.keyBuf, false, nil
		}
		if !found {
			return nil, false, s.missingKey()
		}
	}
}

// unescapeText appends the value of a raw text-format field to out.
func unescapeText(out, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(raw) {
			break // a trailing backslash is dropped
		}
		c = raw[i]
		switch {
		case c >= '0' && c <= '7':
			v := int(c - '0')
			for n := 1; n < 3 && i+1 < len(raw) && raw[i+1] >= '0' && raw[i+1] <= '7'; n++ {
				i++
				v = v<<3 + int(raw[i]-'0')
			}
			c = byte(v & 0o377)
		case c == 'x':
			if i+1 < len(raw) && isHex(raw[i+1]) {
				i++
				v := hexVal(raw[i])
				if i+1 < len(raw) && isHex(raw[i+1]) {
					i++
					v = v<<4 + hexVal(raw[i])
				}
				c = v
			}
		case c == 'b':
			c = '\b'
		case c == 'f':
			c = '\f'
		case c == 'n':
			c = '\n'
		case c == 'r':
			c = '\r'
		case c == 't':
			c = '\t'
		case c == 'v':
			c = '\v'
		}
		out = append(out, c)
	}
	return out
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// csvKey finds the key field of a csv line as CopyReadAttributesCSV does
// and decodes it.
func (s *CopySplitter) csvKey(line []byte) ([]byte, bool, error) {
	delim, quote, esc := s.opts.Delimiter, s.opts.Quote, s.opts.Escape
	pos := 0
	for field := 0; ; field++ {
		isKey := field == s.cfg.KeyColumn
		start := pos
		sawQuote, plain, found := false, true, false
		if isKey {
			s.keyBuf = s.keyBuf[:0]
		}
	field:
		for pos < len(line) {
			c := line[pos]
			pos++
			if c == delim {
				found = true
				break
			}
			if c != quote {
				if isKey {
					s.keyBuf = append(s.keyBuf, c)
				}
				continue
			}
			sawQuote, plain = true, false
			for {
				if pos >= len(line) {
					return nil, false, s.errorf("unterminated CSV quoted field")
				}
				c = line[pos]
				pos++
				if c == esc && pos < len(line) && (line[pos] == esc || line[pos] == quote) {
					if isKey {
						s.keyBuf = append(s.keyBuf, line[pos])
					}
					pos++
					continue
				}
				if c == quote {
					continue field
				}
				if isKey {
					s.keyBuf = append(s.keyBuf, c)
				}
			}
		}
		if isKey {
			raw := line[start:pos]
			if found {
				raw = line[start : pos-1]
			}
			if !sawQuote && string(raw) == s.opts.Null && !s.keyNotNull {
				return nil, true, nil
			}
			if !sawQuote {
				if err := s.isDefault(raw); err != nil {
					return nil, false, err
				}
			}
			val := s.keyBuf
			if plain {
				val = raw
			}
			if s.keyForceNull && string(val) == s.opts.Null {
				return nil, true, nil
			}
			return val, false, nil
		}
		if !found {
			return nil, false, s.missingKey()
		}
	}
}

// Binary format.

var copyBinarySignature = []byte("PGCOPY\n\xff\r\n\x00")

// writeBinary passes on each complete header, tuple or trailer of data.
func (s *CopySplitter) writeBinary(data []byte) error {
	for len(data) > 0 && !s.ended {
		if len(s.carry) == 0 {
			n, ok, err := s.binUnit(data)
			if err != nil {
				return err
			}
			if ok {
				if err := s.binEmit(data[:n]); err != nil {
					return err
				}
				data = data[n:]
				continue
			}
			return s.keep(data)
		}
		for {
			n, ok, err := s.binUnit(s.carry)
			if err != nil {
				return err
			}
			if ok {
				if err := s.binEmit(s.carry); err != nil {
					return err
				}
				s.carry = s.carry[:0]
				break
			}
			if len(data) == 0 {
				return nil
			}
			take := min(n-len(s.carry), len(data))
			if err := s.keep(data[:take]); err != nil {
				return err
			}
			data = data[take:]
		}
	}
	if s.ended && len(data) > 0 {
		return s.errorf("received copy data after EOF marker")
	}
	return nil
}

// binUnit measures the unit at the start of b: the file header, a tuple
// or the trailer. When b holds all of it, it returns its length and ok;
// otherwise the length b must at least have to tell more.
func (s *CopySplitter) binUnit(b []byte) (n int, ok bool, err error) {
	max := s.cfg.MaxRowLen
	if !s.binHeader {
		sig := min(len(b), len(copyBinarySignature))
		if string(b[:sig]) != string(copyBinarySignature[:sig]) {
			return 0, false, s.errorf("COPY file signature not recognized")
		}
		if len(b) < 19 {
			return 19, false, nil
		}
		flags := binary.BigEndian.Uint32(b[11:])
		if flags&(1<<16) != 0 {
			return 0, false, s.errorf("invalid COPY file header (WITH OIDS)")
		}
		if flags>>16 != 0 {
			return 0, false, s.errorf("unrecognized critical flags in COPY file header")
		}
		ext := int32(binary.BigEndian.Uint32(b[15:]))
		if ext < 0 {
			return 0, false, s.errorf("invalid COPY file header (missing length)")
		}
		n = 19 + int(ext)
		if n > max {
			return 0, false, s.tooLong()
		}
		return n, len(b) >= n, nil
	}
	if len(b) < 2 {
		return 2, false, nil
	}
	fields := int(int16(binary.BigEndian.Uint16(b)))
	s.binTrailer = fields == -1
	if s.binTrailer {
		return 2, true, nil
	}
	if fields <= s.cfg.KeyColumn {
		return 0, false, s.errorf("row field count is %d, but the shard key is field %d", fields, s.cfg.KeyColumn+1)
	}
	n = 2
	for f := 0; f < fields; f++ {
		if len(b) < n+4 {
			return n + 4, false, nil
		}
		l := int(int32(binary.BigEndian.Uint32(b[n:])))
		n += 4
		if l < -1 {
			return 0, false, s.errorf("invalid field size")
		}
		if f == s.cfg.KeyColumn {
			s.keyOff, s.keyLen = n, l
		}
		if l > 0 {
			n += l
		}
		if n > max {
			return 0, false, s.tooLong()
		}
	}
	return n, len(b) >= n, nil
}

func (s *CopySplitter) binEmit(unit []byte) error {
	defer func() { s.lineNo++ }()
	switch {
	case !s.binHeader:
		s.binHeader = true
		s.lineNo-- // the header is not a tuple
		return s.sink.CopyAll(unit)
	case s.binTrailer:
		s.ended = true
		return s.sink.CopyAll(unit)
	case s.keyLen < 0:
		return s.sink.CopyRow(unit, nil, true)
	}
	return s.sink.CopyRow(unit, unit[s.keyOff:s.keyOff+s.keyLen], false)
}

func (s *CopySplitter) closeBinary() error {
	if !s.binHeader {
		if len(s.carry) < len(copyBinarySignature) {
			return s.errorf("COPY file signature not recognized")
		}
		return s.errorf("invalid COPY file header (missing length)")
	}
	if len(s.carry) > 0 {
		return s.errorf("unexpected EOF in COPY data")
	}
	return nil
}
