package distributed

import (
	"testing"

	"github.com/google/uuid"
)

func TestCommandID(t *testing.T) {
	u := uuid.NewString()
	if got := commandID("", "  ", "upper-"+u); got != asUUID("upper-"+u) {
		t.Fatalf("first non-empty id not used: %s", got)
	}
	if got := asUUID(u); got != u {
		t.Fatalf("UUID not kept: %s", got)
	}
	if got := asUUID("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"); got != "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" {
		t.Fatalf("UUID not canonical: %s", got)
	}
	a, b := asUUID("cmd-1"), asUUID("cmd-1")
	if a != b || a == asUUID("cmd-2") {
		t.Fatalf("derived ids not stable and distinct: %s %s", a, b)
	}
	if _, err := uuid.Parse(a); err != nil {
		t.Fatalf("derived id %q is not a UUID", a)
	}
	if commandID("", "") != "" {
		t.Fatal("no id must stay empty")
	}
}
