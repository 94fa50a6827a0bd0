package sqlstore

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

var jsonCorpus = []string{
	``, `null`, `{}`, `{ }`, ` {"a":1} `, `{"accountId": "acc-1", "owner": "Jane Doe", "balance": 1250.5, "currency": "EUR", "open": true}`,
	`{"a":-0,"b":0.5e10,"c":1E-3,"d":-12.25e+2,"e":123456789012345678901234567890}`,
	`{"n":null,"t":true,"f":false,"s":"","x":[],"y":[1,"a",null,{"z":[[]]}],"o":{"p":{"q":{}}}}`,
	`{"a":1,"a":2}`, `{"é":"ünïcödé ✓"}`, `{"esc":"a\"b"}`, `{"u":"\u00e9"}`, `{"bad":"` + "\xff" + `"}`,
	`{"ctl":"a` + "\x01" + `b"}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":+1}`, `{"a":1e400}`,
	`{"a":tru}`, `{"a":1,}`, `{"a" 1}`, `{"a":1} x`, `[1,2]`, `"s"`, `{"a":[1,]}`, `{"a":[1 2]}`, `{1:2}`,
	`{"a":NaN}`, "{\n\t\"a\" :\r\n 1\n}", `{"deep":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
}

// TestDecodeMapInternedMatchesEncodingJSON: the fast decoder gives encoding/json's map, or
// its error, on every input.
func TestDecodeMapInternedMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonCorpus {
		checkDecode(t, []byte(s))
	}
}

func FuzzDecodeMapInterned(f *testing.F) {
	for _, s := range jsonCorpus {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecode(t, b) })
}

func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	want, werr := DecodeMap(b)
	var in Interner
	got, gerr := DecodeMapInterned(b, &in)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("%q: error %v, encoding/json %v", b, gerr, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: %#v, encoding/json %#v", b, got, want)
	}
	// and the same again with the interner warm
	if again, _ := DecodeMapInterned(b, &in); !reflect.DeepEqual(again, want) {
		t.Fatalf("%q (interned): %#v, encoding/json %#v", b, again, want)
	}
	_ = json.Valid(b)
}

func BenchmarkDecodeContext(b *testing.B) {
	data := []byte(`{"open": true, "owner": "Jane Doe", "balance": 1250.5, "currency": "EUR", "accountId": "acc-123456"}`)
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecodeMap(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		var in Interner
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeMapInterned(data, &in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

var timersCorpus = []string{
	`[]`, ` [ ] `, `null`, `[{}]`, `[null]`,
	`[{"kind": "timeout", "dueAt": 1764633600000, "event": "THAW", "armedAt": 1764547200000, "totalMs": 86400000, "transition": 3, "targetState": "Open"}]`,
	`[{"event":"A","targetState":"B","dueAt":5,"totalMs":5,"kind":"auto","transition":0,"armedAt":0,"causationId":"c","correlationId":"d","spent":true},{"event":"B","spent":false}]`,
	`[{"dueAt":-0}]`, `[{"dueAt":-12}]`, `[{"dueAt":01}]`, `[{"dueAt":1.5}]`, `[{"dueAt":1e3}]`, `[{"dueAt":123456789012345678}]`,
	`[{"dueAt":1234567890123456789}]`, `[{"dueAt":99999999999999999999}]`, `[{"dueAt":"5"}]`, `[{"event":5}]`,
	`[{"DueAt":5}]`, `[{"EVENT":"x"}]`, `[{"other":1}]`, `[{"event":"a\"b"}]`, `[{"event":"é"}]`, `[{"event":"` + "\xff" + `"}]`,
	`[{"spent":null}]`, `[{"spent":1}]`, `[{"event":null}]`, `[{"dueAt":5,"dueAt":6}]`, `[{"dueAt":5},]`, `[{"dueAt":5}] x`,
	`[{"dueAt" 5}]`, `[{"dueAt":}]`, `[{"dueAt":-}]`, `{"dueAt":5}`, `[1]`, `[`, `[{`, "[\n\t{\"dueAt\" :\r\n 7 }\n]",
}

// TestDecodeTimersMatchesEncodingJSON: the fast timers reader gives json.Unmarshal's timers,
// or its error, on every input.
func TestDecodeTimersMatchesEncodingJSON(t *testing.T) {
	for _, s := range timersCorpus {
		checkTimers(t, []byte(s))
	}
}

func FuzzDecodeTimers(f *testing.F) {
	for _, s := range timersCorpus {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkTimers(t, b) })
}

func checkTimers(t *testing.T, b []byte) {
	t.Helper()
	var want []store.Timer
	werr := json.Unmarshal(b, &want)
	var in Interner
	got, gerr := DecodeTimers(b, &in)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("%q: error %v, encoding/json %v", b, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: %#v, encoding/json %#v", b, got, want)
	}
}
