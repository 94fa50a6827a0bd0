// Package groupcommit gathers concurrent commits into batches handled by one committer
// goroutine, so that a SQL store can apply many commits in one database transaction (one
// fsync) while every caller still gets its own result.
//
// Cancellation: a caller whose context ends while its commit is still queued gets the
// context's error and its commit is never applied. Once the committer has taken a commit into
// a transaction, the caller waits for that transaction's outcome (bounded by the backend's own
// timeout) so that the answer is never ambiguous: an error means nothing was applied, nil
// means the commit is durable.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/xcomponent/xcomponent/store"
)

// Request states.
const (
	pending int32 = iota
	taken
	cancelled
)

type request struct {
	commit *store.Commit
	state  atomic.Int32
	done   chan error // buffered (1): the committer never blocks on it
}

// RunFunc applies a batch of commits and returns one error per commit (nil = durable).
// It must return only once the transaction holding the successful commits has committed.
type RunFunc func(batch []*store.Commit) []error

// Queue is a group-commit queue with its committer goroutines.
type Queue struct {
	reqs     chan *request
	stop     chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once
	maxBatch int
	run      RunFunc
	wg       sync.WaitGroup
}

// New starts committers goroutines that apply up to maxBatch queued commits at a time with
// run. Close stops them.
func New(maxBatch, committers int, run RunFunc) *Queue {
	if maxBatch <= 0 {
		maxBatch = 256
	}
	if committers <= 0 {
		committers = 1
	}
	q := &Queue{
		reqs:     make(chan *request, maxBatch*committers*4),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
		maxBatch: maxBatch,
		run:      run,
	}
	q.wg.Add(committers)
	for range committers {
		go q.loop()
	}
	go func() {
		q.wg.Wait()
		q.drain()
		close(q.stopped)
	}()
	return q
}

// Submit queues c and waits for its outcome.
func (q *Queue) Submit(ctx context.Context, c *store.Commit) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	select {
	case <-q.stop:
		return fmt.Errorf("commit: %w", store.ErrClosed)
	default:
	}
	r := &request{commit: c, done: make(chan error, 1)}
	select {
	case q.reqs <- r:
	case <-ctx.Done():
		return fmt.Errorf("commit: %w", ctx.Err())
	case <-q.stop:
		return fmt.Errorf("commit: %w", store.ErrClosed)
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(pending, cancelled) {
			return fmt.Errorf("commit: %w", ctx.Err())
		}
		// Already in a transaction: its outcome decides.
		select {
		case err := <-r.done:
			return err
		case <-q.stopped:
			return q.afterStop(r)
		}
	case <-q.stopped:
		return q.afterStop(r)
	}
}

// afterStop is the outcome of a request once every committer has exited: either it was
// handled (its result is in done) or it never will be.
func (q *Queue) afterStop(r *request) error {
	select {
	case err := <-r.done:
		return err
	default:
		return fmt.Errorf("commit: %w", store.ErrClosed)
	}
}

func (q *Queue) loop() {
	defer q.wg.Done()
	reqs := make([]*request, 0, q.maxBatch)
	batch := make([]*store.Commit, 0, q.maxBatch)
	for {
		reqs = reqs[:0]
		select {
		case <-q.stop:
			return
		case r := <-q.reqs:
			reqs = append(reqs, r)
		}
	gather:
		for len(reqs) < q.maxBatch {
			select {
			case r := <-q.reqs:
				reqs = append(reqs, r)
			default:
				break gather
			}
		}
		n := 0
		for _, r := range reqs {
			if r.state.CompareAndSwap(pending, taken) {
				reqs[n] = r
				n++
			}
		}
		reqs = reqs[:n]
		if n == 0 {
			continue
		}
		batch = batch[:0]
		for _, r := range reqs {
			batch = append(batch, r.commit)
		}
		errs := q.safeRun(batch)
		for i, r := range reqs {
			r.done <- errs[i]
		}
		clear(batch)
		clear(reqs)
	}
}

// safeRun calls run and makes sure every commit gets an answer even if run panics or
// returns the wrong number of results.
func (q *Queue) safeRun(batch []*store.Commit) (errs []error) {
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("commit: internal error: %v", p)
			errs = make([]error, len(batch))
			for i := range errs {
				errs[i] = err
			}
		}
	}()
	errs = q.run(batch)
	if len(errs) != len(batch) {
		err := errors.New("commit: internal error: wrong number of results")
		errs = make([]error, len(batch))
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// drain answers every request still queued once the committers have exited.
func (q *Queue) drain() {
	for {
		select {
		case r := <-q.reqs:
			if r.state.CompareAndSwap(pending, taken) {
				r.done <- fmt.Errorf("commit: %w", store.ErrClosed)
			}
		default:
			return
		}
	}
}

// Close stops the committers once their current batch is done and waits for them. Commits
// still queued fail with store.ErrClosed. Close is idempotent.
func (q *Queue) Close() {
	q.stopOnce.Do(func() { close(q.stop) })
	<-q.stopped
}
