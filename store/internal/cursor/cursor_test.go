package cursor

import "testing"

func TestRoundTrip(t *testing.T) {
	for _, id := range []string{"0190d4b2-7a10-7cc0-8000-000000000001", "x|y", "é"} {
		c := Encode(-42, id)
		if ms, got, ok := Decode(c); !ok || ms != -42 || got != id {
			t.Errorf("Decode(Encode(-42, %q)) = %d, %q, %v", id, ms, got, ok)
		}
	}
	for _, bad := range []string{"", "garbage!", "MTIz" /* 123 */, Encode(1, ""), "fHg" /* |x */} {
		if _, _, ok := Decode(bad); ok {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
}
