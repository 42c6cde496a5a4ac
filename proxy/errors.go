package proxy

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATEs the proxy uses for errors of its own making.
const (
	codeProtocolViolation           = "08P01"
	codeConnectionFailure           = "08006"
	codeTxResolutionUnknown         = "08007"
	codeInvalidAuthSpec             = "28000"
	codeInvalidPassword             = "28P01"
	codeInvalidCatalog              = "3D000"
	codeTooManyConnections          = "53300"
	codeQueryCanceled               = "57014"
	codeFeatureNotSupported         = "0A000"
	codeInvalidParamValue           = "22023"
	codeInvalidTextRepr             = "22P02"
	codeInvalidBinaryRepresentation = "22P03"
	codeNotNullViolation            = "23502"
	codeUndefinedTable              = "42P01"
	codeInsufficientPrivilege       = "42501"
	codeDuplicatePrepared           = "42P05"
	codeInFailedTx                  = "25P02"
	codeAdminShutdown               = "57P01"
	codeProgramLimit                = "54000"
	codeObjectNotInState            = "55000"
	codeSyntaxError                 = "42601"
	codeConfigFileError             = "F0000"
)

// pgError is an error the proxy reports to a client as an ErrorResponse.
type pgError struct {
	Severity string // ERROR or FATAL
	Code     string
	Message  string
	Detail   string
	Hint     string
	err      error // the cause, for logs and errors.Is
}

func (e *pgError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s (SQLSTATE %s): %v", e.Message, e.Code, e.err)
	}
	return fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
}

func (e *pgError) Unwrap() error { return e.err }

func newFatal(code, format string, args ...any) *pgError {
	return &pgError{Severity: "FATAL", Code: code, Message: fmt.Sprintf(format, args...)}
}

// toPgError is the one place that turns any error into what the client sees.
// Errors that are not already *pgError become an internal connection failure
// that does not expose Go error text beyond its message.
func toPgError(err error) *pgError {
	var pe *pgError
	if errors.As(err, &pe) {
		return pe
	}
	return &pgError{Severity: "ERROR", Code: codeConnectionFailure, Message: err.Error(), err: err}
}

// appendErrorResponse encodes err as an ErrorResponse message.
func appendErrorResponse(buf []byte, err error) []byte {
	pe := toPgError(err)
	msg := pgproto3.ErrorResponse{
		Severity:            pe.Severity,
		SeverityUnlocalized: pe.Severity,
		Code:                pe.Code,
		Message:             pe.Message,
		Detail:              pe.Detail,
		Hint:                pe.Hint,
	}
	out, encErr := msg.Encode(buf)
	if encErr != nil {
		// Only oversized fields fail to encode; send the bare code.
		out, _ = (&pgproto3.ErrorResponse{Severity: pe.Severity, Code: pe.Code, Message: "error"}).Encode(buf)
	}
	return out
}
