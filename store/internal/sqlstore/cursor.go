package sqlstore

import (
	"fmt"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/internal/cursor"
)

// EncodeCursor returns the Search cursor of the page that ends with (updated, id).
func EncodeCursor(updated int64, id string) string { return cursor.Encode(updated, id) }

// DecodeCursor returns the position of a Search cursor, or an error wrapping
// store.ErrBadCursor when it is not one that EncodeCursor produced with an id valid for d.
func (d *Dialect) DecodeCursor(c string) (updated int64, id string, err error) {
	if n, id, ok := cursor.Decode(c); ok && d.ValidID(id) {
		return n, id, nil
	}
	return 0, "", fmt.Errorf("search: cursor %q: %w", c, store.ErrBadCursor)
}
