package sqlstore

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/xcomponent/xcomponent/store"
)

func testDialect(dollar bool) *Dialect {
	d := &Dialect{Placeholder: Question, ValidID: func(id string) bool { return id != "" && !strings.Contains(id, " ") }}
	if dollar {
		d.Placeholder, d.IDCast = Dollar, "::uuid"
	}
	return d
}

func TestBuilder(t *testing.T) {
	for _, tc := range []struct {
		dollar bool
		want   string
	}{
		{false, "SELECT x FROM t WHERE a = ? AND b = ? AND c = ? ORDER BY a LIMIT ?"},
		{true, "SELECT x FROM t WHERE a = $1 AND b = $2::uuid AND c = $3 ORDER BY a LIMIT $4"},
	} {
		b := testDialect(tc.dollar).NewBuilder()
		b.Where("a = " + b.Arg("A"))
		b.Where("b = " + b.ID("B"))
		b.Where("c = " + b.Arg(3))
		if got := b.SQL("SELECT x FROM t", "ORDER BY a LIMIT "+b.Arg(10)); got != tc.want {
			t.Errorf("SQL = %q, want %q", got, tc.want)
		}
		if got := b.Args(); len(got) != 4 || got[0] != "A" || got[1] != "B" || got[2] != 3 || got[3] != 10 {
			t.Errorf("Args = %v", got)
		}
	}
	if got := testDialect(false).NewBuilder().SQL("SELECT 1", ""); got != "SELECT 1" {
		t.Errorf("no condition: %q", got)
	}
}

func TestCursor(t *testing.T) {
	d := testDialect(false)
	c := EncodeCursor(1700000000123, "an-id")
	ms, id, err := d.DecodeCursor(c)
	if err != nil || ms != 1700000000123 || id != "an-id" {
		t.Fatalf("DecodeCursor(EncodeCursor) = %d, %q, %v", ms, id, err)
	}
	for _, bad := range []string{"garbage!", "", EncodeCursor(1, ""), EncodeCursor(1, "not valid"),
		"MTIz", // "123": no separator
	} {
		if _, _, err := d.DecodeCursor(bad); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("DecodeCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
}

func TestReadMigrations(t *testing.T) {
	ms, err := ReadMigrations(fstest.MapFS{
		"0002_b.sql": {Data: []byte("B")},
		"0010_c.sql": {Data: []byte("C")},
		"0001_a.sql": {Data: []byte("A")},
		"README.md":  {Data: []byte("not a migration")},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Name+"="+m.SQL)
	}
	if strings.Join(got, ",") != "0001_a.sql=A,0002_b.sql=B,0010_c.sql=C" {
		t.Errorf("migrations = %v", got)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"bad name":       {"init.sql": {}},
		"zero version":   {"0000_x.sql": {}},
		"shared version": {"0001_a.sql": {}, "1_b.sql": {}},
	} {
		if _, err := ReadMigrations(fsys); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCodecs(t *testing.T) {
	if s, _ := EncodeMap(nil); s != "{}" {
		t.Errorf("EncodeMap(nil) = %q", s)
	}
	if s, _ := EncodeTimers(nil); s != "[]" {
		t.Errorf("EncodeTimers(nil) = %q", s)
	}
	for _, raw := range []string{"", "null", "{}"} {
		if m, err := DecodeMap([]byte(raw)); err != nil || m == nil || len(m) != 0 {
			t.Errorf("DecodeMap(%q) = %v, %v; want an empty map", raw, m, err)
		}
	}
	in := store.Instance{ID: "i"}
	ts, _ := EncodeTimers([]store.Timer{{Event: "T", DueAt: 5}})
	if err := DecodeInstanceJSON(&in, []byte(`{"a":1}`), []byte(ts)); err != nil || in.Data["a"] != 1.0 || len(in.Timers) != 1 || in.Timers[0].DueAt != 5 {
		t.Errorf("DecodeInstanceJSON: %+v, %v", in, err)
	}
	if err := DecodeInstanceJSON(&in, []byte(`{`), nil); err == nil || !strings.Contains(err.Error(), "instance i context") {
		t.Errorf("bad JSON: %v", err)
	}
}

func TestMapEncoderEncodesEachMapOnce(t *testing.T) {
	var e MapEncoder
	a := map[string]any{"b": 1, "a": "x"}
	b := map[string]any{"a": "x", "b": 1}
	for _, m := range []map[string]any{a, b, a, nil} {
		got, err := e.Encode(m)
		want, _ := EncodeMap(m)
		if err != nil || got != want {
			t.Fatalf("Encode(%v) = %q, %v; want %q", m, got, err, want)
		}
	}
	if len(e.seen) != 2 {
		t.Fatalf("%d maps encoded, want 2 (a once, b once, nil never)", len(e.seen))
	}
	e.Reset()
	a["c"] = true // a map changed between two commits is encoded again
	if got, _ := e.Encode(a); got != `{"a":"x","b":1,"c":true}` {
		t.Fatalf("after Reset: %s", got)
	}
	if _, err := e.Encode(map[string]any{"f": func() {}}); err == nil {
		t.Fatal("no error for a value JSON cannot encode")
	}
}
