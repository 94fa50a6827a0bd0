// Package bustest is the behavioural test suite every bus.Bus implementation must pass.
package bustest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/bus"
)

// Timeout bounds every wait of the suite.
const Timeout = 10 * time.Second

// Setup prepares a fresh, isolated broker namespace for one test and returns a function that
// opens a client Bus on it (a separate connection where the implementation has connections).
// The buses must be closed by the Setup's cleanup.
type Setup func(t *testing.T) (newBus func() bus.Bus)

// Run runs the suite.
func Run(t *testing.T, setup Setup) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newBus func() bus.Bus)
	}{
		{"FanOut", testFanOut},
		{"CompetingConsumers", testCompetingConsumers},
		{"DeadLetter", testDeadLetter},
		{"RedeliveryToAnotherConsumer", testRedelivery},
		{"ConfirmedMessagesWaitForConsumer", testRetained},
		{"MetaRoundTrip", testMeta},
		{"PublishContext", testPublishContext},
		{"Close", testClose},
		{"SingleActiveConsumer", testSingleActive},
		{"OrderKey", testOrderKey},
		{"DeadLetterReason", testDeadLetterReason},
		{"QueueExists", testQueueExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, setup(t)) })
	}
}

// Unique returns a name unique to this run, made of letters and digits.
func Unique(prefix string) string { return fmt.Sprintf("%s%08x", prefix, rand.Uint32()) }

// Collector is a handler that records what it receives.
type Collector struct {
	C   chan bus.Message
	Err func(m bus.Message) error // optional: the handler's result
}

// NewCollector returns a Collector with room for n messages.
func NewCollector(n int) *Collector { return &Collector{C: make(chan bus.Message, n)} }

// Handle is the bus.Handler.
func (c *Collector) Handle(_ context.Context, m bus.Message) error {
	c.C <- m
	if c.Err != nil {
		return c.Err(m)
	}
	return nil
}

// Next waits for the next message.
func (c *Collector) Next(t testing.TB) bus.Message {
	t.Helper()
	select {
	case m := <-c.C:
		return m
	case <-time.After(Timeout):
		t.Fatal("timed out waiting for a message")
		return bus.Message{}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

func publish(t *testing.T, b bus.Bus, channel, id string) {
	t.Helper()
	if err := b.Publish(ctxT(t), channel, []byte(`{"id":"`+id+`"}`), bus.Meta{MessageID: id}); err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
}

// keep fails the test on err and closes s at the end of the test.
func keep(t *testing.T) func(s bus.Subscription, err error) bus.Subscription {
	return func(s bus.Subscription, err error) bus.Subscription {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
}

func testFanOut(t *testing.T, newBus func() bus.Bus) {
	ctx := ctxT(t)
	pubBus := newBus()
	ch1, ch2 := Unique("test:fanout:a"), Unique("test:fanout:b")
	var cols []*Collector
	for range 3 {
		c := NewCollector(100)
		b := newBus()
		keep(t)(b.Subscribe(ctx, ch1, c.Handle))
		cols = append(cols, c)
	}
	other := NewCollector(100)
	keep(t)(newBus().Subscribe(ctx, ch2, other.Handle))

	for i := range 5 {
		publish(t, pubBus, ch1, fmt.Sprint("m", i))
	}
	for i, c := range cols {
		for j := range 5 {
			m := c.Next(t)
			if want := fmt.Sprint("m", j); m.MessageID != want || m.Channel != ch1 {
				t.Fatalf("subscriber %d got %s on %s, want %s on %s", i, m.MessageID, m.Channel, want, ch1)
			}
		}
	}
	// The other channel's subscriber got none of them: its first message is the sentinel.
	publish(t, pubBus, ch2, "sentinel")
	if m := other.Next(t); m.MessageID != "sentinel" {
		t.Fatalf("subscriber of %s got %s", ch2, m.MessageID)
	}
}

func testCompetingConsumers(t *testing.T, newBus func() bus.Bus) {
	ctx := ctxT(t)
	q, cmd := Unique("xcomponent.test")+".commands", Unique("test:commands:do")
	const n = 30
	all := make(chan string, 10*n)
	for range 3 {
		keep(t)(newBus().Consume(ctx, q, []string{cmd}, func(_ context.Context, m bus.Message) error {
			all <- m.MessageID
			return nil
		}))
	}
	pubBus := newBus()
	for i := range n {
		publish(t, pubBus, cmd, fmt.Sprint("c", i))
	}
	seen := map[string]int{}
	deadline := time.After(Timeout)
	for len(seen) < n {
		select {
		case id := <-all:
			seen[id]++
			if seen[id] > 1 {
				t.Fatalf("%s delivered twice", id)
			}
		case <-deadline:
			t.Fatalf("received %d of %d", len(seen), n)
		}
	}
	if len(all) != 0 {
		t.Fatalf("%d extra deliveries", len(all))
	}
}

func testDeadLetter(t *testing.T, newBus func() bus.Bus) {
	ctx := ctxT(t)
	b := newBus()
	q, cmd := Unique("xcomponent.test")+".commands", Unique("test:commands:do")
	work := NewCollector(100)
	work.Err = func(m bus.Message) error {
		if m.MessageID[0] == 'p' {
			return errors.New("poison")
		}
		return nil
	}
	keep(t)(b.Consume(ctx, q, []string{cmd}, work.Handle))
	dead := NewCollector(100)
	keep(t)(newBus().Consume(ctx, bus.DeadLetterQueue(q), nil, dead.Handle))

	publish(t, b, cmd, "p1")
	publish(t, b, cmd, "ok")
	publish(t, b, cmd, "p2")
	for _, want := range []string{"p1", "ok", "p2"} {
		if m := work.Next(t); m.MessageID != want || m.Redelivered {
			t.Fatalf("work queue got %s (redelivered %v), want %s", m.MessageID, m.Redelivered, want)
		}
	}
	// Dead letters keep their id, body and channel; "ok" was acknowledged, not dead-lettered.
	for _, want := range []string{"p1", "p2"} {
		m := dead.Next(t)
		if m.MessageID != want || string(m.Body) != `{"id":"`+want+`"}` || m.Channel != cmd {
			t.Fatalf("dead-letter queue got %+v, want %s on %s", m, want, cmd)
		}
	}
	// Refused messages are not redelivered to the work queue.
	publish(t, b, cmd, "ok2")
	if m := work.Next(t); m.MessageID != "ok2" {
		t.Fatalf("work queue got %s, want ok2", m.MessageID)
	}
}

func testRedelivery(t *testing.T, newBus func() bus.Bus) {
	ctx := ctxT(t)
	q, cmd := Unique("xcomponent.test")+".commands", Unique("test:commands:do")
	started := make(chan bus.Message, 10)
	a, err := newBus().Consume(ctx, q, []string{cmd}, func(ctx context.Context, m bus.Message) error {
		started <- m
		<-ctx.Done() // "dies" before acknowledging
		return ctx.Err()
	})
	keep(t)(a, err)
	publish(t, newBus(), cmd, "once")
	select {
	case m := <-started:
		if m.MessageID != "once" || m.Redelivered {
			t.Fatalf("first consumer got %+v", m)
		}
	case <-time.After(Timeout):
		t.Fatal("first consumer got nothing")
	}
	other := NewCollector(10)
	keep(t)(newBus().Consume(ctx, q, []string{cmd}, other.Handle))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	m := other.Next(t)
	if m.MessageID != "once" || !m.Redelivered {
		t.Fatalf("second consumer got %s (redelivered %v), want a redelivered \"once\"", m.MessageID, m.Redelivered)
	}
}

func testRetained(t *testing.T, newBus func() bus.Bus) {
	ctx := ctxT(t)
	q, cmd := Unique("xcomponent.test")+".commands", Unique("test:commands:do")
	s, err := newBus().Consume(ctx, q, []string{cmd}, func(context.Context, bus.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	// Nobody consumes now: confirmed messages wait in the durable queue.
	b := newBus()
	for i := range 3 {
		publish(t, b, cmd, fmt.Sprint("r", i))
	}
	c := NewCollector(10)
	keep(t)(newBus().Consume(ctx, q, nil, c.Handle))
	for i := range 3 {
		if m := c.Next(t); m.MessageID != fmt.Sprint("r", i) {
			t.Fatalf("got %s, want r%d", m.MessageID, i)
		}
	}
}

func testMeta(t *testing.T, newBus func() bus.Bus) {
	ctx := ctxT(t)
	b := newBus()
	ch := Unique("test:events:meta")
	q := Unique("xcomponent.test") + ".commands"
	fan, work := NewCollector(10), NewCollector(10)
	keep(t)(newBus().Subscribe(ctx, ch, fan.Handle))
	keep(t)(newBus().Consume(ctx, q, []string{ch}, work.Handle))
	meta := bus.Meta{MessageID: "0b6f5a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", CorrelationID: "corr-42",
		Headers: map[string]string{"causationId": "cause-7", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	body := []byte(`{"componentName":"Orders","instanceId":"i1","event":{"type":"GO","payload":{"n":1}}}`)
	if err := b.Publish(ctx, ch, body, meta); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Collector{"subscriber": fan, "consumer": work} {
		m := c.Next(t)
		if string(m.Body) != string(body) || m.Channel != ch || m.MessageID != meta.MessageID ||
			m.CorrelationID != meta.CorrelationID || !reflect.DeepEqual(m.Headers, meta.Headers) {
			t.Fatalf("%s got %+v, want body %s and %+v", name, m, body, meta)
		}
	}
}

func testPublishContext(t *testing.T, newBus func() bus.Bus) {
	b := newBus()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Publish(ctx, Unique("test:x:y"), []byte(`{}`), bus.Meta{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled context: %v", err)
	}
	if _, err := b.Subscribe(ctx, Unique("test:x:y"), func(context.Context, bus.Message) error { return nil }); err == nil {
		t.Fatal("Subscribe with a cancelled context succeeded")
	}
}

func testClose(t *testing.T, newBus func() bus.Bus) {
	ctx := ctxT(t)
	b := newBus()
	if !b.Connected() {
		t.Fatal("not connected")
	}
	ch := Unique("test:events:close")
	q := Unique("xcomponent.test") + ".commands"
	running := make(chan struct{})
	var mu sync.Mutex
	var handlerErr error
	keep(t)(b.Consume(ctx, q, []string{ch}, func(ctx context.Context, m bus.Message) error {
		close(running)
		<-ctx.Done()
		mu.Lock()
		handlerErr = ctx.Err()
		mu.Unlock()
		return ctx.Err()
	}))
	keep(t)(b.Subscribe(ctx, ch, func(context.Context, bus.Message) error { return nil }))
	publish(t, b, ch, "x")
	select {
	case <-running:
	case <-time.After(Timeout):
		t.Fatal("handler not called")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waited for the running handler, whose ctx it cancelled.
	mu.Lock()
	if handlerErr == nil {
		t.Fatal("Close returned before the handler")
	}
	mu.Unlock()
	if b.Connected() {
		t.Fatal("connected after Close")
	}
	if err := b.Publish(ctx, ch, []byte(`{}`), bus.Meta{}); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if _, err := b.Subscribe(ctx, ch, func(context.Context, bus.Message) error { return nil }); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if _, err := b.Consume(ctx, q, nil, func(context.Context, bus.Message) error { return nil }); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Consume after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// Of the consumers of a single-active-consumer queue only one receives; when it goes, the next
// one gets the rest, including what the first left unacknowledged.
func testSingleActive(t *testing.T, newBus func() bus.Bus) {
	ctx := ctxT(t)
	q, cmd := Unique("xcomponent.test")+".commands", Unique("test:commands:do")
	opts := bus.ConsumeOptions{Bindings: []string{cmd}, SingleActive: true}
	first := make(chan bus.Message, 100)
	held := make(chan struct{})
	a, err := newBus().ConsumeWith(ctx, q, opts, func(ctx context.Context, m bus.Message) error {
		first <- m
		if m.MessageID == "s2" {
			<-ctx.Done() // dies before acknowledging s2
			close(held)
			return ctx.Err()
		}
		return nil
	})
	keep(t)(a, err)
	second := NewCollector(100)
	keep(t)(newBus().ConsumeWith(ctx, q, opts, second.Handle))
	pub := newBus()
	for i := range 3 {
		publish(t, pub, cmd, fmt.Sprint("s", i))
	}
	for i := range 3 {
		select {
		case m := <-first:
			if want := fmt.Sprint("s", i); m.MessageID != want {
				t.Fatalf("active consumer got %s, want %s", m.MessageID, want)
			}
		case <-time.After(Timeout):
			t.Fatalf("active consumer got %d messages, want 3", i)
		}
	}
	select {
	case m := <-second.C:
		t.Fatalf("standby consumer got %s while the active one lives", m.MessageID)
	default:
	}
	_ = a.Close()
	<-held
	m := second.Next(t)
	if m.MessageID != "s2" || !m.Redelivered {
		t.Fatalf("standby got %s (redelivered %v), want a redelivered s2", m.MessageID, m.Redelivered)
	}
}

// With an OrderKey, messages of one key are handled one at a time in order while other keys
// go on; a blocked key does not hold the others.
func testOrderKey(t *testing.T, newBus func() bus.Bus) {
	ctx := ctxT(t)
	q, cmd := Unique("xcomponent.test")+".commands", Unique("test:commands:do")
	var mu sync.Mutex
	got := map[string][]string{}
	release := make(chan struct{})
	done := make(chan string, 100)
	opts := bus.ConsumeOptions{Bindings: []string{cmd}, Prefetch: 50, OrderKey: func(m bus.Message) string { return m.MessageID[:1] }}
	keep(t)(newBus().ConsumeWith(ctx, q, opts, func(ctx context.Context, m bus.Message) error {
		if m.MessageID == "a0" {
			select { // blocks key "a" until the "b" messages are through (or forever, in memory)
			case <-release:
			case <-time.After(200 * time.Millisecond):
			}
		}
		mu.Lock()
		got[m.MessageID[:1]] = append(got[m.MessageID[:1]], m.MessageID)
		mu.Unlock()
		done <- m.MessageID
		return nil
	}))
	pub := newBus()
	for i := range 5 {
		publish(t, pub, cmd, fmt.Sprint("a", i))
		publish(t, pub, cmd, fmt.Sprint("b", i))
	}
	for range 10 {
		select {
		case id := <-done:
			if id == "b4" {
				close(release)
			}
		case <-time.After(Timeout):
			t.Fatal("not every message handled")
		}
	}
	for _, k := range []string{"a", "b"} {
		for i, id := range got[k] {
			if id != fmt.Sprint(k, i) {
				t.Fatalf("key %s handled in the order %v", k, got[k])
			}
		}
	}
}

// A handler's error is the dead letter's reason.
func testDeadLetterReason(t *testing.T, newBus func() bus.Bus) {
	ctx := ctxT(t)
	q, cmd := Unique("xcomponent.test")+".commands", Unique("test:commands:do")
	dlq := Unique("xcomponent.test") + ".commands.dlq"
	keep(t)(newBus().ConsumeWith(ctx, q, bus.ConsumeOptions{Bindings: []string{cmd}, DeadLetterQueue: dlq},
		func(context.Context, bus.Message) error { return errors.New("malformed: no instanceId") }))
	dead := NewCollector(10)
	keep(t)(newBus().Consume(ctx, dlq, nil, dead.Handle))
	publish(t, newBus(), cmd, "poison")
	m := dead.Next(t)
	if m.MessageID != "poison" || m.Channel != cmd || m.Headers[bus.HeaderDeadLetterReason] != "malformed: no instanceId" {
		t.Fatalf("dead letter %+v", m)
	}
}

func testQueueExists(t *testing.T, newBus func() bus.Bus) {
	ctx := ctxT(t)
	b := newBus()
	q := Unique("xcomponent.test") + ".commands"
	if ok, err := b.QueueExists(ctx, q); err != nil || ok {
		t.Fatalf("QueueExists before declaration: %v, %v", ok, err)
	}
	keep(t)(b.Consume(ctx, q, nil, func(context.Context, bus.Message) error { return nil }))
	if ok, err := newBus().QueueExists(ctx, q); err != nil || !ok {
		t.Fatalf("QueueExists after declaration: %v, %v", ok, err)
	}
}
