package httpapi

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/xcomponent/xcomponent/component"
)

const loopYAML = `name: Loop
stateMachines:
  - name: M
    initialState: A
    states:
      - name: A
    transitions:
      - from: A
        to: A
        event: TICK
`

// TestHistoryPaged: the history endpoints answer pages (default 500, limit capped at 1,000)
// with a nextCursor, oldest first or newest first, every event once; the export streams the
// whole history as JSON or CSV.
func TestHistoryPaged(t *testing.T) {
	e := newEnv(t, Options{}, []*component.Component{parseYAML(t, loopYAML)}, nil)
	id := e.create("Loop", "M", nil)
	const n = 900 // with the creation: 901 events (the memory store keeps 1,000)
	for range n {
		e.send("Loop", id, "TICK", nil, 200)
	}
	versions := func(items []any) []int {
		out := make([]int, len(items))
		for i, it := range items {
			out[i] = int(it.(map[string]any)["version"].(float64))
		}
		return out
	}
	read := func(path, key, query string) ([]int, int) {
		t.Helper()
		var all []int
		pages := 0
		for cur := ""; ; pages++ {
			r := e.must(e.get(path+"?"+query+"&cursor="+url.QueryEscape(cur)), 200)
			all = append(all, versions(r.list(key))...)
			if cur = r.str("nextCursor"); cur == "" {
				return all, pages + 1
			}
			if pages > 50 {
				t.Fatal("paging does not end")
			}
		}
	}
	for _, c := range []struct{ path, key string }{{"/api/instances/" + id + "/history", "history"}, {"/api/history/instances/" + id + "/events", "events"}} {
		first := e.must(e.get(c.path), 200)
		if got := len(first.list(c.key)); got != 500 || first.str("nextCursor") == "" {
			t.Errorf("%s: first page of %d events, cursor %q; want 500 and a cursor", c.path, got, first.str("nextCursor"))
		}
		asc, pages := read(c.path, c.key, "limit=100")
		if len(asc) != n+1 || pages != 10 {
			t.Errorf("%s: %d events in %d pages, want %d in 10", c.path, len(asc), pages, n+1)
		}
		for i, v := range asc {
			if v != i {
				t.Fatalf("%s: event %d has version %d", c.path, i, v)
			}
		}
		desc, _ := read(c.path, c.key, "limit=5000&order=desc")
		if len(desc) != n+1 || desc[0] != n || desc[n] != 0 {
			t.Errorf("%s newest first: %d events, first %d", c.path, len(desc), desc[0])
		}
		for _, bad := range []string{"limit=0", "limit=x", "order=up", "cursor=garbage"} {
			e.must(e.get(c.path+"?"+bad), 400)
		}
	}
	r := e.must(e.get("/api/history/instances/"+id+"/events?limit=1"), 200)
	if last := r.str("snapshot", "lastEventId"); last == "" || last != e.must(e.get("/api/instances/"+id+"/history?order=desc&limit=1"), 200).list("history")[0].(map[string]any)["id"] {
		t.Errorf("lastEventId %q is not the latest event", last)
	}
	e.must(e.get("/api/instances/0193f0a0-0000-7000-8000-000000000000/history/export"), 404)

	// Export: every event, oldest first.
	ex := e.must(e.get("/api/instances/"+id+"/history/export"), 200)
	if !strings.Contains(ex.header.Get("Content-Disposition"), "attachment") {
		t.Errorf("export disposition %q", ex.header.Get("Content-Disposition"))
	}
	var doc struct {
		History []struct {
			Version int `json:"version"`
		} `json:"history"`
	}
	if err := json.Unmarshal(ex.raw, &doc); err != nil || len(doc.History) != n+1 || doc.History[n].Version != n {
		t.Fatalf("JSON export: %d events, %v", len(doc.History), err)
	}
	ex = e.must(e.get("/api/instances/"+id+"/history/export?format=csv"), 200)
	rows, err := csv.NewReader(strings.NewReader(string(ex.raw))).ReadAll()
	if err != nil || len(rows) != n+2 || rows[0][1] != "event" || rows[n+1][1] != "TICK" || rows[n+1][10] != fmt.Sprint(n) {
		t.Fatalf("CSV export: %d rows, %v", len(rows), err)
	}
	e.must(e.get("/api/instances/"+id+"/history/export?format=xml"), 400)
}
