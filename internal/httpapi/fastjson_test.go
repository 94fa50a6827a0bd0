package httpapi

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
)

// stdJSON is what the answers were before the hand-written encoder: encoding/json without
// HTML escaping, with a final newline.
func stdJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tricky strings: escapes, control characters, HTML characters (not escaped), invalid
// UTF-8, U+2028/U+2029, multi-byte runes.
var trickyStrings = []string{
	"", "plain", `quo"te`, `back\slash`, "tab\tnew\nline\rret", "\b\f\x00\x01\x1f\x7f",
	"<script>&amp;</script>", "\xff\xfe invalid", "a\u2028b\u2029c", "é日本語🎉", "\xe2\x80", "\xed\xa0\x80",
	strings.Repeat("x", 300),
}

var trickyFloats = []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1250.5, 1e20, 1e21, 1e-6, 1e-7, 123456789012345678, -2.5e-9,
	math.MaxFloat64, math.SmallestNonzeroFloat64, 9007199254740993, 3.14159e-300}

func randomValue(r *rand.Rand, depth int) any {
	switch n := r.IntN(9); {
	case n == 0:
		return nil
	case n == 1:
		return r.IntN(2) == 0
	case n == 2:
		return trickyFloats[r.IntN(len(trickyFloats))]
	case n == 3:
		return r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))
	case n == 4 && depth < 3:
		m := map[string]any{}
		for range r.IntN(6) {
			m[trickyStrings[r.IntN(len(trickyStrings))]+string(rune('a'+r.IntN(26)))] = randomValue(r, depth+1)
		}
		return m
	case n == 5 && depth < 3:
		s := make([]any, r.IntN(4))
		for i := range s {
			s[i] = randomValue(r, depth+1)
		}
		return s
	case n == 6:
		// types a hook may set: encoded through encoding/json
		return []any{int64(r.IntN(1000)), json.Number("12.50"), []string{"a", "<b>"}, struct{ X int }{3}}[r.IntN(4)]
	default:
		return trickyStrings[r.IntN(len(trickyStrings))]
	}
}

func randomInstance(r *rand.Rand) xc.Instance {
	ctx := map[string]any{}
	for range r.IntN(20) {
		ctx[trickyStrings[r.IntN(len(trickyStrings))]+string(rune('a'+r.IntN(26)))] = randomValue(r, 0)
	}
	in := xc.Instance{
		ID: trickyStrings[r.IntN(len(trickyStrings))], ComponentName: "Orders", MachineName: "Order",
		CurrentState: trickyStrings[r.IntN(len(trickyStrings))], Context: ctx, Status: store.StatusActive,
		CreatedAt: r.Int64(), UpdatedAt: -r.Int64N(1000), Version: r.Int64N(100),
	}
	if r.IntN(3) == 0 {
		in.Context = nil
	}
	if r.IntN(2) == 0 {
		in.PublicMember = in.Context
	}
	if r.IntN(2) == 0 {
		in.IsEntryPoint, in.ParentInstanceID, in.ParentMachineName = true, "p-1", "Parent"
	}
	switch r.IntN(3) {
	case 0:
		in.PendingTimeouts = []xc.PendingTimeout{}
	case 1:
		in.PendingTimeouts = []xc.PendingTimeout{{Event: "LATE", TargetState: "Late", DueAt: 5, RemainingMs: 3, TotalMs: 9, Kind: "timeout"},
			{Event: `"x"`, Kind: "auto"}}
	}
	return in
}

// TestFastJSONMatchesEncodingJSON: the hand-written answers are byte for byte those
// encoding/json writes for the values they replaced.
func TestFastJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		in := randomInstance(r)
		res := xc.Result{Instance: in, PreviousState: "A", NewState: trickyStrings[i%len(trickyStrings)], EventID: "e-1"}
		check := func(what string, enc func([]byte) ([]byte, error), want string) {
			t.Helper()
			got, err := enc(nil)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if string(got)+"\n" != want {
				t.Fatalf("%s differs:\n got  %s\n want %s", what, got, want)
			}
		}
		check("event answer", func(b []byte) ([]byte, error) { return appendEventAnswer(b, &res) },
			stdJSON(t, map[string]any{"success": true, "instance": item(res.Instance),
				"previousState": res.PreviousState, "newState": res.NewState, "eventId": res.EventID}))
		check("create answer", func(b []byte) ([]byte, error) { return appendCreateAnswer(b, &in) },
			stdJSON(t, map[string]any{"success": true, "instanceId": in.ID, "instance": item(in)}))
		page := []xc.Instance{in, randomInstance(r)}
		if i%7 == 0 {
			page = nil
		}
		wantItems := make([]instanceItem, len(page))
		for j, p := range page {
			wantItems[j] = item(p)
		}
		check("list answer", func(b []byte) ([]byte, error) { return appendListAnswer(b, page, "c") },
			stdJSON(t, map[string]any{"instances": wantItems, "nextCursor": "c"}))
	}
}

func TestFastJSONRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, v := range []any{math.NaN(), math.Inf(1), map[string]any{"f": func() {}}, make(chan int)} {
		in := xc.Instance{Context: map[string]any{"bad": v}}
		if _, err := appendInstanceItem(nil, &in); err == nil {
			t.Errorf("%T encoded without error", v)
		}
	}
}

func BenchmarkEventAnswer(b *testing.B) {
	res := xc.Result{Instance: xc.Instance{ID: "019ad6a8-3f1c-7000-8000-000000000001", ComponentName: "Bench",
		MachineName: "Toggle", CurrentState: "On", Context: map[string]any{"accountId": "acc-1", "owner": "Jane Doe",
			"balance": 1250.5, "currency": "EUR", "open": true}, Status: store.StatusActive, CreatedAt: 1, UpdatedAt: 2,
		Version: 3, PendingTimeouts: []xc.PendingTimeout{}}, PreviousState: "Off", NewState: "On", EventID: "e"}
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = marshal(map[string]any{"success": true, "instance": item(res.Instance),
				"previousState": res.PreviousState, "newState": res.NewState, "eventId": res.EventID})
		}
	})
	b.Run("appendEventAnswer", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf, _ = appendEventAnswer(buf[:0], &res)
		}
	})

}
