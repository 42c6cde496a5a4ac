// Package auth implements the server side of PostgreSQL password
// authentication for pgshard's clients: SCRAM-SHA-256 (RFC 5802/7677, as
// PostgreSQL speaks it) and md5. It parses the password forms PostgreSQL
// stores (plain text, "md5..." and "SCRAM-SHA-256$...") and never logs or
// returns a secret in an error.
//
// The package knows nothing of the wire protocol: the caller moves message
// bodies between the client and a SCRAMServer (or CheckMD5) and turns the
// errors into ErrorResponses: ErrAuthFailed is 28P01, ErrProtocol is 08P01,
// and ErrUnsupported, checked before ErrProtocol, is 0A000. It must not log,
// do I/O, or look users up: the caller says whether a user exists and hands
// over its Verifier.
package auth
