package groupcommit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/store"
)

// waitFor polls cond until it holds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond) // polling a condition, not synchronising on time
	}
}

// gate is a RunFunc whose first call blocks until released.
type gate struct {
	mu      sync.Mutex
	sizes   []int
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) run(batch []*store.Commit) []error {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	g.mu.Lock()
	g.sizes = append(g.sizes, len(batch))
	g.mu.Unlock()
	return make([]error, len(batch))
}

func TestBatchesGatherWhileBusy(t *testing.T) {
	g := newGate()
	q := New(64, 1, g.run)
	defer q.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := q.Submit(ctx, &store.Commit{}); err != nil {
			t.Error(err)
		}
	})
	<-g.entered
	for range 10 {
		wg.Go(func() {
			if err := q.Submit(ctx, &store.Commit{}); err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, func() bool { return len(q.reqs) == 10 })
	close(g.release)
	wg.Wait()
	if len(g.sizes) != 2 || g.sizes[0] != 1 || g.sizes[1] != 10 {
		t.Errorf("batch sizes %v, want [1 10]", g.sizes)
	}
}

func TestCancelWhileQueued(t *testing.T) {
	g := newGate()
	q := New(64, 1, g.run)
	defer q.Close()
	go func() { _ = q.Submit(context.Background(), &store.Commit{}) }()
	<-g.entered
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Submit(ctx, &store.Commit{}) }()
	waitFor(t, func() bool { return len(q.reqs) == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while queued: %v", err)
	}
	close(g.release)
	// The cancelled commit is never applied: the next batch only has the next commit.
	if err := q.Submit(context.Background(), &store.Commit{}); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	total := 0
	for _, n := range g.sizes {
		total += n
	}
	if total != 2 {
		t.Errorf("applied %d commits (batches %v), want 2", total, g.sizes)
	}
}

func TestCloseAnswersEveryone(t *testing.T) {
	g := newGate()
	q := New(64, 2, g.run)
	ctx := context.Background()
	results := make(chan error, 20)
	go func() { results <- q.Submit(ctx, &store.Commit{}) }()
	<-g.entered
	var wg sync.WaitGroup
	for range 19 {
		wg.Go(func() { results <- q.Submit(ctx, &store.Commit{}) })
	}
	closed := make(chan struct{})
	go func() {
		q.Close()
		close(closed)
	}()
	close(g.release)
	<-closed
	wg.Wait()
	for range 20 {
		if err := <-results; err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("unexpected error: %v", err)
		}
	}
	if err := q.Submit(ctx, &store.Commit{}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("submit after Close: %v", err)
	}
	q.Close() // idempotent
}

func TestPanicInRun(t *testing.T) {
	q := New(8, 1, func([]*store.Commit) []error { panic("boom") })
	defer q.Close()
	err := q.Submit(context.Background(), &store.Commit{})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic: %v", err)
	}
	q2 := New(8, 1, func([]*store.Commit) []error { return nil })
	defer q2.Close()
	if err := q2.Submit(context.Background(), &store.Commit{}); err == nil {
		t.Fatal("wrong result count: no error")
	}
}
