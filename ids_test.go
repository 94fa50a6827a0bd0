package xcomponent

import (
	"testing"

	"github.com/google/uuid"
)

func TestIDsAreIncreasingUUIDv7(t *testing.T) {
	var g idGen
	prev := ""
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id := g.next()
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("%s: not a UUIDv7 (%v)", id, err)
		}
		if id <= prev || seen[id] {
			t.Fatalf("%s after %s: not increasing", id, prev)
		}
		seen[id], prev = true, id
	}
}
