package store_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := store.NewMemory()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// TestMemoryUnbounded: the store without retention limits passes the same suite.
func TestMemoryUnbounded(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return store.NewMemory(store.WithHistoryLimit(0), store.WithCompletedLimit(0))
	})
}

func memCreate(t testing.TB, s store.Store, id string, status store.Status, at int64) {
	t.Helper()
	rec := &store.Instance{ID: id, Component: "C", Machine: "M", State: "S0", Status: status, CreatedAt: at, UpdatedAt: at}
	err := s.Commit(context.Background(), &store.Commit{
		Instances: []store.InstanceWrite{{Instance: rec, ExpectVersion: -1}},
		Events:    []store.Event{{ID: id + "-created", InstanceID: id, Type: store.EventCreated, ToState: "S0"}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// memTransition writes version v of instance id (a self-loop), with status.
func memTransition(t testing.TB, s store.Store, id string, v int64, status store.Status) {
	t.Helper()
	rec := &store.Instance{ID: id, Component: "C", Machine: "M", State: "S0", Status: status, Version: v, UpdatedAt: 1000 + v}
	err := s.Commit(context.Background(), &store.Commit{
		Instances: []store.InstanceWrite{{Instance: rec, ExpectVersion: v - 1}},
		Events:    []store.Event{{ID: fmt.Sprintf("%s-%d", id, v), InstanceID: id, Type: "E", FromState: "S0", ToState: "S0", Seq: v}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMemoryHistoryLimit(t *testing.T) {
	for _, limit := range []int{1, 2, 3, 7, 300, 1000} {
		s := store.NewMemory(store.WithHistoryLimit(limit))
		memCreate(t, s, "i", store.StatusActive, 1)
		const n = 2500
		for v := int64(1); v <= n; v++ {
			memTransition(t, s, "i", v, store.StatusActive)
			if v > int64(2*limit+3) && v%97 != 0 && v != n {
				continue // every version around the limit, then a sample
			}
			evs, err := s.History(context.Background(), "i")
			if err != nil {
				t.Fatal(err)
			}
			want := min(int(v), limit)
			if len(evs) != want+1 || evs[0].Type != store.EventCreated {
				t.Fatalf("limit %d, version %d: %d events (first %q), want the creation and the last %d", limit, v, len(evs), evs[0].Type, want)
			}
			for i, e := range evs[1:] {
				if e.Seq != v-int64(want)+1+int64(i) {
					t.Fatalf("limit %d, version %d: event %d has seq %d", limit, v, i+1, e.Seq)
				}
			}
			// The pages, both ways, hold the same events (the ring and the chunks indexed).
			for _, newest := range []bool{false, true} {
				if v%97 != 0 && v != n && v != int64(limit)+1 {
					break
				}
				var got []store.Event
				for cur := ""; ; {
					page, next, err := s.HistoryPage(context.Background(), "i", store.EventPage{Limit: 3, Cursor: cur, Newest: newest})
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, page...)
					if cur = next; cur == "" {
						break
					}
				}
				if newest {
					slices.Reverse(got)
				}
				if len(got) != len(evs) {
					t.Fatalf("limit %d, version %d, newest %v: %d events paged, want %d", limit, v, newest, len(got), len(evs))
				}
				for i := range got {
					if got[i].ID != evs[i].ID {
						t.Fatalf("limit %d, version %d, newest %v: paged event %d is %s, want %s", limit, v, newest, i, got[i].ID, evs[i].ID)
					}
				}
			}
		}
	}
}

func TestMemoryCompletedLimit(t *testing.T) {
	s := store.NewMemory(store.WithCompletedLimit(10))
	for i := range 50 {
		id := fmt.Sprintf("i%02d", i)
		memCreate(t, s, id, store.StatusActive, int64(i))
		memTransition(t, s, id, 1, store.StatusCompleted)
	}
	memCreate(t, s, "live", store.StatusActive, 100)
	for i := range 50 {
		_, err := s.Instance(context.Background(), fmt.Sprintf("i%02d", i))
		if kept := err == nil; kept != (i >= 40) {
			t.Errorf("completed instance %d kept: %v, want the last 10 only", i, kept)
		}
	}
	if _, err := s.Instance(context.Background(), "live"); err != nil {
		t.Errorf("live instance: %v", err)
	}
}

// TestMemoryRetentionKeepsHeapFlat: under a steady load (a fixed set of instances, each
// transition recorded) the heap stops growing once the histories are full.
func TestMemoryRetentionKeepsHeapFlat(t *testing.T) {
	s := store.NewMemory(store.WithHistoryLimit(100))
	const instances = 200
	for i := range instances {
		memCreate(t, s, fmt.Sprint(i), store.StatusActive, 1)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	v := int64(0)
	round := func(n int) {
		for range n {
			v++
			for i := range instances {
				memTransition(t, s, fmt.Sprint(i), v, store.StatusActive)
			}
		}
	}
	round(300)
	before := heap()
	round(2000)
	after := heap()
	if after > before+before/4 {
		t.Errorf("heap grew from %d to %d bytes over 400,000 more events with 100 kept per instance", before, after)
	}
}

// BenchmarkMemorySearch100k: one page of 100 among 100,000 live instances holds a page, not
// the 100,000 (B/op).
func BenchmarkMemorySearch100k(b *testing.B) {
	s := store.NewMemory()
	for i := range 100_000 {
		memCreate(b, s, fmt.Sprintf("%06d", i), store.StatusActive, int64(i%5000))
	}
	b.ReportAllocs()
	for b.Loop() {
		page, next, err := s.Search(context.Background(), store.Query{Component: "C", Limit: 100})
		if err != nil || len(page) != 100 || next == "" {
			b.Fatal(len(page), next, err)
		}
	}
}
