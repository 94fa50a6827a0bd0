// Package dsn masks passwords in connection strings for logs and errors.
package dsn

import (
	"net/url"
	"regexp"
	"strings"
)

// keyValuePassword matches password=… in a libpq key/value connection string, quoted or not.
var keyValuePassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// urlPassword matches the password part of a URL's user info, when url.Parse cannot.
var urlPassword = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:)[^@]*(@)`)

// Redact returns s with any password replaced by ***: the user-info password of a URL, a
// password= query parameter or key/value pair. Other text is unchanged.
func Redact(s string) string {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return keyValuePassword.ReplaceAllString(urlPassword.ReplaceAllString(s, "${1}***${2}"), "${1}***")
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxredactedxxx")
		}
		q := u.Query()
		changed := false
		for k := range q {
			if strings.EqualFold(k, "password") {
				q[k] = []string{"xxxredactedxxx"}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
		return strings.ReplaceAll(u.String(), "xxxredactedxxx", "***")
	}
	return keyValuePassword.ReplaceAllString(s, "${1}***")
}
