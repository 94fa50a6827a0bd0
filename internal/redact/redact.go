// Package redact masks the secrets of URLs and connection strings for logs, errors and
// health answers: the one redaction of the product (store specs, the broker URL, the hooks
// endpoint).
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// keyValuePassword matches password=… in a libpq key/value connection string, quoted or not.
var keyValuePassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// urlPassword matches the password part of a URL's user info, when url.Parse cannot.
var urlPassword = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:)[^@]*(@)`)

// shownParams are the query parameters whose values are shown: connection settings that
// carry no secret. Every other value is masked (a hooks URL may carry its token as ?code=,
// ?key=, ?sig= …).
var shownParams = map[string]bool{
	"sslmode": true, "user": true, "connect_timeout": true, "application_name": true,
	"target_session_attrs": true, "search_path": true, "heartbeat": true, "channel_max": true,
	"frame_max": true, "locale": true,
}

const mask = "***"

// URL returns s with its secrets replaced by ***: the password of a URL's user info (the user
// name stays), every query value but the connection settings above, the fragment, and
// password= in a libpq key/value string. Anything else is unchanged ("sqlite:./x.db",
// "memory").
func URL(s string) string {
	if !strings.Contains(s, "://") {
		return keyValuePassword.ReplaceAllString(s, "${1}"+mask)
	}
	u, err := url.Parse(s)
	if err != nil {
		return keyValuePassword.ReplaceAllString(urlPassword.ReplaceAllString(s, "${1}"+mask+"${2}"), "${1}"+mask)
	}
	const placeholder = "xxxredactedxxx"
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), placeholder)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if !shownParams[strings.ToLower(k)] {
				q[k] = []string{placeholder}
			}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	return strings.ReplaceAll(u.String(), placeholder, mask)
}
