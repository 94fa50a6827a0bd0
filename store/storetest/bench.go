package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xcomponent/xcomponent/store"
)

// BenchmarkCommit measures commits per second with 1, 16 and 256 concurrent writers, each
// writing its own instance; every commit is one transition: one event row and one update of
// the instance's current-state row. open is called once; every run writes new instances.
func BenchmarkCommit(b *testing.B, open func(b *testing.B) store.Store) {
	s := open(b)
	for _, writers := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			benchCommit(b, s, writers)
		})
	}
}

func benchCommit(b *testing.B, s store.Store, writers int) {
	ctx := context.Background()
	comp := unique("bench")
	ins := make([]store.Instance, writers)
	c := &store.Commit{}
	for i := range ins {
		ins[i] = newInstance(comp, "Order", "Created", map[string]any{"n": 0, "customer": "ACME"}, base)
		c.Instances = append(c.Instances, store.InstanceWrite{Instance: recPtr(ins[i]), ExpectVersion: -1})
		c.Events = append(c.Events, createdEvent(ins[i]))
	}
	if err := s.Commit(ctx, c); err != nil {
		b.Fatal(err)
	}
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Value
	)
	b.ReportAllocs()
	b.ResetTimer()
	for w := range writers {
		wg.Go(func() {
			in := ins[w]
			for next.Add(1) <= int64(b.N) {
				c, nxt := step(in, "Next", "Created", map[string]any{"n": in.Version + 1, "customer": "ACME"}, base+in.Version+1)
				if err := s.Commit(ctx, c); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
				in = nxt
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := first.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}
