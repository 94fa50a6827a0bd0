package bus_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/bus"
)

// gatedBus holds every Publish until the test lets it through, so that the messages published
// meanwhile wait in the Batcher.
type gatedBus struct {
	*bus.Memory
	gate      chan struct{}
	mu        sync.Mutex
	publishes []bus.Message
	entered   chan struct{}
}

func (g *gatedBus) Publish(ctx context.Context, channel string, body []byte, meta bus.Meta) error {
	g.entered <- struct{}{}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.mu.Lock()
	g.publishes = append(g.publishes, bus.Message{Channel: channel, Body: body, Meta: meta})
	g.mu.Unlock()
	return g.Memory.Publish(ctx, channel, body, meta)
}

func TestBatcherCoalescesWhileInFlight(t *testing.T) {
	g := &gatedBus{Memory: bus.NewMemory(), gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	defer func() { _ = g.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		mu  sync.Mutex
		got []bus.Message
	)
	const ch = "xcomponent:cmd:C:3"
	sub, err := g.Consume(ctx, "q", []string{ch}, func(_ context.Context, m bus.Message) error {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		if m.MessageID == "fail" {
			return errors.New("refused")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Close() }()

	b := bus.NewBatcher(g, 0, 0)
	var wg sync.WaitGroup
	publish := func(id string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Publish(ctx, "k", ch, []byte(`{"n":"`+id+`"}`), bus.Meta{MessageID: id, Headers: map[string]string{"h": id}}); err != nil {
				t.Errorf("publish %s: %v", id, err)
			}
		}()
	}
	waitQueued := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for queued(b) != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d messages queued, want %d", queued(b), n)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	publish("first")
	<-g.entered
	publish("second") // two publishes of a key in flight at once
	<-g.entered
	waitQueued(0) // both in flight: the next ones wait
	// One whose caller gives up while it waits: not published.
	gone, giveUp := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- b.Publish(gone, "k", ch, []byte(`{}`), bus.Meta{MessageID: "gone"}) }()
	waitQueued(1)
	giveUp()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("publish given up: %v", err)
	}
	waitQueued(0)
	for i := range 10 {
		publish(strconv.Itoa(i))
		waitQueued(i + 1)
	}
	publish("fail")
	waitQueued(11)
	close(g.gate)
	wg.Wait()
	if p, n := b.Stats(); p != 3 || n != 13 {
		t.Fatalf("%d broker messages for %d messages, want 3 for 13", p, n)
	}
	g.mu.Lock()
	singles, batches := map[string]bool{}, 0
	for _, m := range g.publishes {
		if bus.IsBatch(m) {
			batches++
			if m.Headers[bus.HeaderBatch] != "11" {
				t.Fatalf("batch of %s", m.Headers[bus.HeaderBatch])
			}
		} else {
			singles[m.MessageID] = true
		}
	}
	if len(g.publishes) != 3 || batches != 1 || !singles["first"] || !singles["second"] {
		t.Fatalf("publishes %+v", g.publishes)
	}
	g.mu.Unlock()
	// The consumer got the 13 messages one by one, those of the batch in order, with their own
	// meta (the two first ones were published concurrently: in either order).
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 13 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages consumed", n)
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var want []string
	for i := range 10 {
		want = append(want, strconv.Itoa(i))
	}
	want = append(want, "fail")
	var rest []bus.Message
	firsts := 0
	for _, m := range got {
		if m.MessageID == "first" || m.MessageID == "second" {
			firsts++
			continue
		}
		rest = append(rest, m)
	}
	if firsts != 2 || len(rest) != len(want) {
		t.Fatalf("consumed %+v", got)
	}
	for i, m := range rest {
		if m.MessageID != want[i] || m.Headers["h"] != want[i] || string(m.Body) != `{"n":"`+want[i]+`"}` || m.Channel != ch || bus.IsBatch(m) {
			t.Fatalf("message %d: %+v, want %s", i, m, want[i])
		}
	}
	// The failed one is dead-lettered alone, with its reason.
	dead := g.DeadLetters("q")
	if len(dead) != 1 || dead[0].MessageID != "fail" || dead[0].Headers[bus.HeaderDeadLetterReason] != "refused" || bus.IsBatch(dead[0]) {
		t.Fatalf("dead letters %+v", dead)
	}
}

// queued counts the messages waiting in the batcher (through a publish that cannot start).
func queued(b *bus.Batcher) int { return bus.BatcherQueued(b, "k") }

func TestUnbatchMalformed(t *testing.T) {
	good, meta, err := bus.EncodeBatch([]bus.Message{{Body: []byte(`{}`)}, {Body: []byte(`[]`)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, header, body string
	}{
		{"not JSON", "2", `{`},
		{"wrong type", "1", `{"type":"x","messages":[{"body":{}}]}`},
		{"no messages", "0", `{"type":"xcomponent_batch","messages":[]}`},
		{"count differs", "3", string(good)},
		{"message without body", "1", `{"type":"xcomponent_batch","messages":[{"messageId":"a"}]}`},
	} {
		m := bus.Message{Body: []byte(c.body), Meta: bus.Meta{Headers: map[string]string{bus.HeaderBatch: c.header}}}
		if parts, err := bus.Unbatch(m); err == nil {
			t.Errorf("%s: %d parts, no error", c.name, len(parts))
		}
	}
	parts, err := bus.Unbatch(bus.Message{Channel: "c", Body: good, Meta: meta, Redelivered: true})
	if err != nil || len(parts) != 2 || !parts[1].Redelivered || parts[1].Channel != "c" || string(parts[1].Body) != `[]` {
		t.Fatalf("%+v %v", parts, err)
	}
	if parts, err := bus.Unbatch(bus.Message{Body: []byte(`x`)}); parts != nil || err != nil {
		t.Fatalf("not a batch: %v %v", parts, err)
	}
}
