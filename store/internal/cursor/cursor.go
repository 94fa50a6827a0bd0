// Package cursor is the format of the Search cursors of every store (memory, SQLite,
// PostgreSQL): the position (updatedAt, id) of the last instance of a page, in the
// (updatedAt descending, id ascending) order of Search; the next page starts after it.
package cursor

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Encode returns the cursor of a page ending with (updated, id).
func Encode(updated int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(updated, 10) + "|" + id))
}

// Decode returns the position of a cursor that Encode produced; ok is false for anything
// else (the id is never empty).
func Decode(c string) (updated int64, id string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", false
	}
	ms, id, found := strings.Cut(string(b), "|")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !found || err != nil || id == "" {
		return 0, "", false
	}
	return n, id, true
}
