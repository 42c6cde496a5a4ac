package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// redactedText replaces a secret wherever the configuration is shown.
const redactedText = "*****"

// Secret is a password. It is decoded from YAML like a string, but prints as
// "*****" through fmt, log/slog, encoding/json and yaml (an empty Secret
// prints as ""), so a Config can be logged or shown without leaking it.
// Convert with string(s) to use the value.
type Secret string

// String returns "*****", or "" for an empty Secret.
func (s Secret) String() string { return string(s.redacted()) }

// GoString is String for the %#v verb.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// MarshalText returns the redacted form, for encoders such as yaml and JSON.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s Secret) redacted() Secret {
	if s == "" {
		return ""
	}
	return redactedText
}

// Duration is a time.Duration written in YAML as a Go duration string
// ("500ms", "15s", "10m", "1h"); a bare 0 is also accepted.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, "expected a duration such as 15s, got %s", kindName(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return nodeError(n, "invalid duration %q: use a number with a unit, such as 500ms, 15s, 10m or 1h", n.Value)
	}
	*d = Duration(v)
	return nil
}

// String formats d with its largest whole unit: "15s", "10m", "1h".
func (d Duration) String() string {
	v := time.Duration(d)
	switch {
	case v == 0:
		return "0s"
	case v%time.Hour == 0:
		return fmt.Sprintf("%dh", v/time.Hour)
	case v%time.Minute == 0:
		return fmt.Sprintf("%dm", v/time.Minute)
	case v%time.Second == 0:
		return fmt.Sprintf("%ds", v/time.Second)
	case v%time.Millisecond == 0:
		return fmt.Sprintf("%dms", v/time.Millisecond)
	}
	return v.String()
}

// MarshalText returns String, which UnmarshalYAML reads back.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Size is a number of bytes, written in YAML as an integer or with a unit
// B, kB (or KB), MB or GB, 1024-based as in PostgreSQL: "64MB".
type Size int64

const (
	kilobyte Size = 1 << 10
	megabyte Size = 1 << 20
	gigabyte Size = 1 << 30
)

// sizeUnits are the accepted units, largest first (String uses the first
// that divides evenly).
var sizeUnits = []struct {
	name string
	size Size
}{{"GB", gigabyte}, {"MB", megabyte}, {"kB", kilobyte}, {"KB", kilobyte}, {"B", 1}}

// UnmarshalYAML parses an integer number of bytes or a number with a unit.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, "expected a size such as 64MB, got %s", kindName(n))
	}
	v, err := parseSize(n.Value)
	if err != nil {
		return nodeError(n, "%v", err)
	}
	*s = v
	return nil
}

func parseSize(text string) (Size, error) {
	t := strings.TrimSpace(text)
	digits := strings.TrimRightFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.TrimSpace(t[len(digits):])
	mult := Size(0)
	if unit == "" {
		mult = 1
	}
	for _, u := range sizeUnits {
		if unit == u.name {
			mult = u.size
		}
	}
	num, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || mult == 0 || strings.ContainsAny(digits, "+-") {
		return 0, fmt.Errorf("invalid size %q: use a whole number of bytes or one with a unit B, kB, MB or GB (such as 64MB)", text)
	}
	if num > int64(1<<62)/int64(mult) {
		return 0, fmt.Errorf("size %q is too large", text)
	}
	return Size(num) * mult, nil
}

// String formats s with its largest whole unit: "64MB", "1536kB", "100B".
func (s Size) String() string {
	for _, u := range sizeUnits {
		if s != 0 && s%u.size == 0 {
			return fmt.Sprintf("%d%s", s/u.size, u.name)
		}
	}
	return fmt.Sprintf("%dB", int64(s))
}

// MarshalText returns String, which UnmarshalYAML reads back.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// nodeError is a decoding error yaml collects instead of stopping, in a form
// reporter.decodeError maps back to the node's path.
func nodeError(n *yaml.Node, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d column %d: %s", n.Line, n.Column, msg)}}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a scalar"
}
