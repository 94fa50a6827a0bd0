package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

// Concurrency: commits racing on different and on the same instances.

func testConcurrentDifferent(t *testing.T, s store.Store) {
	ctx := context.Background()
	comp := unique("comp")
	const writers, steps = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*steps)
	ins := make([]store.Instance, writers)
	for w := range writers {
		ins[w] = newInstance(comp, "M", "S", map[string]any{"n": 0}, base)
		wg.Go(func() {
			in := ins[w]
			if err := s.Commit(ctx, create(in)); err != nil {
				errs <- err
				return
			}
			for i := range steps {
				c, next := step(in, "Inc", "S", map[string]any{"n": i + 1}, base+int64(i))
				c.Outbox = []store.Message{{ID: newID(), Component: comp, Kind: "k", Body: []byte("m"), CreatedAt: base}}
				c.InboxID = newID()
				if err := s.Commit(ctx, c); err != nil {
					errs <- fmt.Errorf("writer %d step %d: %w", w, i, err)
					return
				}
				in = next
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, in := range ins {
		got, err := s.Instance(ctx, in.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != steps || !equalJSON(got.Data, map[string]any{"n": steps}) {
			t.Errorf("%s: version %d data %v", in.ID, got.Version, got.Data)
		}
		h, _ := s.History(ctx, in.ID)
		if len(h) != steps+1 {
			t.Errorf("%s: %d events, want %d", in.ID, len(h), steps+1)
		}
		for i, e := range h {
			if e.Seq != int64(i) {
				t.Errorf("%s: event %d has seq %d", in.ID, i, e.Seq)
				break
			}
		}
	}
	if ob := outboxOf(t, s, comp); len(ob) != writers*steps {
		t.Errorf("outbox: %d messages, want %d", len(ob), writers*steps)
	}
}

func testConcurrentSame(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := newInstance(unique("comp"), "Counter", "S", map[string]any{"count": 0}, base)
	mustCreate(t, s, in)
	const writers, each = 8, 10
	var (
		mu      sync.Mutex
		winners = map[int64]int{} // expected version -> writer
		wg      sync.WaitGroup
	)
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for done := 0; done < each; {
				cur, err := s.Instance(ctx, in.ID)
				if err != nil {
					errs <- err
					return
				}
				n := int(norm(cur.Data).(map[string]any)["count"].(float64))
				c, _ := step(cur, "Inc", "S", map[string]any{"count": n + 1, "by": w}, base+cur.Version+1)
				err = s.Commit(ctx, c)
				switch {
				case err == nil:
					mu.Lock()
					if prev, dup := winners[cur.Version]; dup {
						errs <- fmt.Errorf("version %d won by writers %d and %d", cur.Version, prev, w)
					}
					winners[cur.Version] = w
					mu.Unlock()
					done++
				case errors.Is(err, store.ErrConflict):
				default:
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.Instance(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != writers*each || !equalJSON(got.Data["count"], writers*each) {
		t.Errorf("final version %d count %v, want %d (a lost update?)", got.Version, got.Data["count"], writers*each)
	}
	h, _ := s.History(ctx, in.ID)
	if len(h) != writers*each+1 {
		t.Errorf("%d events, want %d", len(h), writers*each+1)
	}
	for i, e := range h {
		if e.Seq != int64(i) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		if i > 0 && !equalJSON(e.Data["count"], i) {
			t.Fatalf("event %d has count %v", i, e.Data["count"])
		}
	}
}

// testConflictIsolation fires valid and stale commits at once: with group commit they share
// transactions, and a stale one must fail alone.
func testConflictIsolation(t *testing.T, s store.Store) {
	ctx := context.Background()
	comp := unique("comp")
	const n = 64
	ins := make([]store.Instance, n)
	c := &store.Commit{}
	for i := range ins {
		ins[i] = newInstance(comp, "M", "S", nil, base)
		c.Instances = append(c.Instances, store.InstanceWrite{Instance: recPtr(ins[i]), ExpectVersion: -1})
	}
	mustCommit(t, s, c)
	start := make(chan struct{})
	results := make([]error, n)
	commits := make([]*store.Commit, n)
	for i := range ins {
		commits[i], _ = step(ins[i], "Go", "T", map[string]any{"i": i}, base+1)
		commits[i].Outbox = []store.Message{{ID: newID(), Component: comp, Kind: "k", Body: []byte("x"), CreatedAt: base}}
		switch i % 4 {
		case 1:
			commits[i].Instances[0].ExpectVersion = 3 // stale
		case 2:
			commits[i].InboxID = newID()
		case 3:
			commits[i] = create(ins[i]) // exists already
		}
	}
	var wg sync.WaitGroup
	for i := range ins {
		wg.Go(func() {
			<-start
			results[i] = s.Commit(ctx, commits[i])
		})
	}
	close(start)
	wg.Wait()
	landed := 0
	for i, err := range results {
		got, gerr := s.Instance(ctx, ins[i].ID)
		if gerr != nil {
			t.Fatal(gerr)
		}
		switch i % 4 {
		case 0, 2:
			if err != nil {
				t.Errorf("commit %d: %v", i, err)
			}
			if got.Version != 1 {
				t.Errorf("commit %d: version %d, want 1", i, got.Version)
			}
			landed++
		default:
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("commit %d: %v, want ErrConflict", i, err)
			}
			if got.Version != 0 {
				t.Errorf("commit %d: version %d, want 0", i, got.Version)
			}
		}
	}
	if ob := outboxOf(t, s, comp); len(ob) != landed {
		t.Errorf("outbox: %d messages, want %d", len(ob), landed)
	}
}
