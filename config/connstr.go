package config

import (
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// checkConnString validates a shard's connection string and returns what is
// wrong with it, or "". A connection string may not carry credentials: the
// proxy logs in to backends with the database's backend_user and
// backend_password or the client's own, and a secret here would show up in
// errors and in printed configurations.
func checkConnString(s string) string {
	if strings.TrimSpace(s) == "" {
		return "required (a postgres:// URL or a keyword/value string such as \"host=10.0.0.1 port=5432 dbname=app\")"
	}
	if found := connCredentials(s); len(found) > 0 {
		return "must not contain " + strings.Join(found, " or ") +
			"; backends are logged in to with the database's backend_user and backend_password, or the client's own credentials"
	}
	// With no credentials in s, pgconn's message (which quotes s) is safe.
	if _, err := pgconn.ParseConfig(s); err != nil {
		return "invalid connection string: " + err.Error()
	}
	return ""
}

// credentialKeys are the connection parameters that name a login.
var credentialKeys = map[string]string{"user": "a user", "password": "a password", "sslpassword": "an sslpassword"}

// anyPassword catches a password the parsers below miss in a malformed string.
var anyPassword = regexp.MustCompile(`(?i)(^|[^a-z0-9_])(ssl)?password\s*=`)

// connCredentials lists the credentials a connection string carries.
func connCredentials(s string) []string {
	var keys []string
	lower := strings.ToLower(s)
	if strings.HasPrefix(lower, "postgres://") || strings.HasPrefix(lower, "postgresql://") {
		rest := s[strings.Index(s, "://")+3:]
		authority := rest
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			authority = rest[:i]
		}
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			userinfo := authority[:at]
			name, _, hasPassword := strings.Cut(userinfo, ":")
			if name != "" {
				keys = append(keys, "user")
			}
			if hasPassword {
				keys = append(keys, "password")
			}
		}
		if _, query, ok := strings.Cut(rest, "?"); ok {
			query, _, _ = strings.Cut(query, "#")
			for part := range strings.SplitSeq(query, "&") {
				k, _, _ := strings.Cut(part, "=")
				if u, err := url.QueryUnescape(k); err == nil {
					k = u
				}
				keys = append(keys, k)
			}
		}
	} else {
		keys = keywordKeys(s)
	}
	if anyPassword.MatchString(s) {
		keys = append(keys, "password")
	}
	var found []string
	for _, k := range keys {
		if name, ok := credentialKeys[k]; ok && !slices.Contains(found, name) {
			found = append(found, name)
		}
	}
	slices.Sort(found)
	return found
}

// keywordKeys returns the keywords of a libpq keyword/value string, as far as
// it can be read.
func keywordKeys(s string) []string {
	var keys []string
	for {
		s = strings.TrimLeft(s, " \t\n\r\f\v")
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return keys
		}
		keys = append(keys, strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t\n\r\f\v")
		i := 0
		if strings.HasPrefix(s, "'") {
			for i = 1; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' {
					i++
				}
			}
			i++
		} else {
			for ; i < len(s) && !strings.ContainsRune(" \t\n\r\f\v", rune(s[i])); i++ {
				if s[i] == '\\' {
					i++
				}
			}
		}
		s = s[min(i, len(s)):]
	}
}
