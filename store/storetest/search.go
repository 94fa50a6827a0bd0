package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

// Search: filters, text, cursor pages.

// searchAll pages through q with the given page size and returns every instance.
func searchAll(t *testing.T, s store.Store, q store.Query) []store.Instance {
	t.Helper()
	var out []store.Instance
	q.Cursor = ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("search: no end of pages")
		}
		page, next, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("Search(%+v): %v", q, err)
		}
		if q.Limit > 0 && len(page) > q.Limit {
			t.Fatalf("page of %d for limit %d", len(page), q.Limit)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		if len(page) == 0 {
			t.Fatalf("empty page with a next cursor %q", next)
		}
		q.Cursor = next
	}
}

func testSearch(t *testing.T, s store.Store) {
	comp, other := unique("comp"), unique("comp")
	parentA, parentB := newID(), newID()
	names := []string{"Alice Martin", "bob", "Émile Zola", "ALICE cooper", "carol 100%_off"}
	var all []store.Instance
	for i := range 30 {
		component := comp
		if i%5 == 4 {
			component = other
		}
		machine := []string{"Order", "Payment"}[i%2]
		state := []string{"Created", "Paid", "Done"}[i%3]
		in := newInstance(component, machine, state, map[string]any{
			"name": names[i%len(names)], "i": i, "tags": []any{"t" + fmt.Sprint(i)},
		}, base+int64(i))
		in.UpdatedAt = base + int64(i*7%30)*1000 // distinct, not in creation order
		switch i % 6 {
		case 0:
			in.ParentID, in.ParentMachine = parentA, "Parent"
		case 3:
			in.ParentID, in.ParentMachine = parentB, "Parent"
		}
		switch i % 4 {
		case 1:
			in.Status = store.StatusCompleted
		case 2:
			in.Status = store.StatusError
		}
		mustCreate(t, s, in)
		all = append(all, in)
	}
	expect := func(q store.Query) []string {
		var out []store.Instance
		for i := range all {
			if store.Matches(&all[i], q) {
				out = append(out, all[i])
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].UpdatedAt > out[j].UpdatedAt })
		return ids(out)
	}
	queries := []store.Query{
		{Component: comp},
		{Component: other},
		{Component: comp, Machine: "Order"},
		{Component: comp, State: "Paid"},
		{Component: comp, Status: store.StatusActive},
		{Component: comp, Status: store.StatusCompleted},
		{Component: comp, Status: store.StatusError},
		{Component: comp, Text: "alice"},
		{Component: comp, Text: "MARTIN"},
		{Component: comp, Text: "émile"},
		{Component: comp, Text: "ÉMILE"},
		{Component: comp, Text: "t17"},
		{Component: comp, Text: "no such text"},
		{Component: comp, Text: "0%_O"}, // LIKE wildcards are plain text
		{Component: comp, Text: "l 1%"}, // (matches no other name)
		{Component: comp, Text: `\`},    // the escape character too
		{Component: comp, Text: strings.ToUpper(all[3].ID[9:18])},
		{Component: comp, From: base + 10_000},
		{Component: comp, To: base + 10_000},
		{Component: comp, From: base + 5_000, To: base + 12_000},
		{Component: comp, Machine: "Payment", Status: store.StatusActive, From: base + 3_000},
		{Machine: "Order", Component: other, State: "Done"},
		{Component: comp, ParentID: parentA},
		{ParentID: parentB},
		{ParentID: parentB, Status: store.StatusActive},
		{ParentID: newID()},
	}
	for _, q := range queries {
		want := expect(q)
		got := ids(searchAll(t, s, q))
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("Search(%+v):\n got  %v\n want %v", q, got, want)
		}
		q.Limit = 3
		got = ids(searchAll(t, s, q))
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("Search(%+v) by pages of 3:\n got  %v\n want %v", q, got, want)
		}
	}
	// Records come back whole.
	page, _, err := s.Search(context.Background(), store.Query{Component: comp, Text: all[0].ID})
	if err != nil || len(page) != 1 {
		t.Fatalf("Search by id: %v, %v", page, err)
	}
	checkInstance(t, all[0], page[0])
	if _, _, err := s.Search(context.Background(), store.Query{Cursor: "garbage!"}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("Search with a bad cursor: %v, want ErrBadCursor", err)
	}
}

func testSearchPagination(t *testing.T, s store.Store) {
	comp := unique("comp")
	// Many instances sharing update times: pages must still neither repeat nor skip one.
	var all []string
	c := &store.Commit{}
	for i := range 53 {
		in := newInstance(comp, "M", "S", nil, base)
		in.UpdatedAt = base + int64(i/10)
		c.Instances = append(c.Instances, store.InstanceWrite{Instance: recPtr(in), ExpectVersion: -1})
		all = append(all, in.ID)
	}
	mustCommit(t, s, c)
	for _, limit := range []int{1, 4, 10, 52, 53, 54} {
		got := searchAll(t, s, store.Query{Component: comp, Limit: limit})
		if len(got) != len(all) {
			t.Errorf("limit %d: %d results, want %d", limit, len(got), len(all))
		}
		seen := map[string]bool{}
		for i, in := range got {
			if seen[in.ID] {
				t.Errorf("limit %d: %s twice", limit, in.ID)
			}
			seen[in.ID] = true
			if i > 0 && in.UpdatedAt > got[i-1].UpdatedAt {
				t.Errorf("limit %d: not newest first at %d", limit, i)
			}
		}
		for _, id := range all {
			if !seen[id] {
				t.Errorf("limit %d: %s missing", limit, id)
			}
		}
	}
}

func testSearchDefaultLimit(t *testing.T, s store.Store) {
	comp := unique("comp")
	c := &store.Commit{}
	for i := range 120 {
		in := newInstance(comp, "M", "S", nil, base+int64(i))
		c.Instances = append(c.Instances, store.InstanceWrite{Instance: recPtr(in), ExpectVersion: -1})
	}
	mustCommit(t, s, c)
	page, next, err := s.Search(context.Background(), store.Query{Component: comp})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 100 || next == "" {
		t.Fatalf("default page: %d results, next %q; want 100 and a cursor", len(page), next)
	}
	page, next, err = s.Search(context.Background(), store.Query{Component: comp, Cursor: next})
	if err != nil || len(page) != 20 || next != "" {
		t.Fatalf("second page: %d results, next %q, %v; want 20 and no cursor", len(page), next, err)
	}
}
