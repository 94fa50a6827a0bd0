package sqlstore

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/xcomponent/xcomponent/store"
)

// A Search cursor is the (updatedAt, id) of the last instance of a page, in the
// (updated_at DESC, instance_id ASC) order; the next page starts after it.

// EncodeCursor returns the cursor of the page that ends with (updated, id).
func EncodeCursor(updated int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(updated, 10) + "|" + id))
}

// DecodeCursor returns the position of a cursor, or an error wrapping store.ErrBadCursor
// when it is not one that EncodeCursor produced with an id valid for d.
func (d *Dialect) DecodeCursor(c string) (updated int64, id string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		ms, id, ok := strings.Cut(string(b), "|")
		if n, err := strconv.ParseInt(ms, 10, 64); ok && err == nil && id != "" && d.ValidID(id) {
			return n, id, nil
		}
	}
	return 0, "", fmt.Errorf("search: cursor %q: %w", c, store.ErrBadCursor)
}
