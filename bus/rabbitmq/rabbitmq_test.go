package rabbitmq_test

import (
	"context"
	"fmt"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/bustest"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/internal/tcpproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const brokerAddr = rmqtest.BrokerAddr

// vhost gives the test its own vhost and returns its URL.
func vhost(t *testing.T) string {
	_, url := rmqtest.NewVhost(t)
	return url
}

func ctl(t *testing.T, args ...string) { rmqtest.Ctl(t, args...) }

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func open(t *testing.T, opts rabbitmq.Options) *rabbitmq.Bus {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = logger(t)
	}
	opts.MinBackoff, opts.MaxBackoff = 50*time.Millisecond, time.Second
	b, err := rabbitmq.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), bustest.Timeout)
	defer cancel()
	if err := b.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRabbitMQ(t *testing.T) {
	bustest.Run(t, func(t *testing.T) func() bus.Bus {
		url := vhost(t)
		return func() bus.Bus { return open(t, rabbitmq.Options{URL: url, Prefetch: 4}) }
	})
}

// The exchange is declared exactly as xcomponent-ai declares it: a passive declaration with
// other properties would close the channel.
func TestExchangeMatchesTS(t *testing.T) {
	url := vhost(t)
	open(t, rabbitmq.Options{URL: url})
	out, err := exec.Command("rabbitmqctl", "--quiet", "list_exchanges", "-p", strings.TrimPrefix(url, "amqp://guest:guest@"+brokerAddr+"/"),
		"name", "type", "durable", "auto_delete", "internal", "arguments").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var found bool
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "xcomponent.events" {
			found = true
			if got := strings.Join(f[1:], " "); got != "topic true false false []" {
				t.Fatalf("xcomponent.events declared as %q", got)
			}
		}
	}
	if !found {
		t.Fatalf("xcomponent.events not declared:\n%s", out)
	}
}

func TestReconnect(t *testing.T) {
	url := vhost(t)
	vh := url[strings.LastIndex(url, "/")+1:]
	states := make(chan bool, 100)
	b := open(t, rabbitmq.Options{URL: url, Name: "reconnect-test", OnStateChange: func(up bool) { states <- up }})
	if !b.Connected() || <-states != true {
		t.Fatal("not connected")
	}
	// Generous: two rabbitmqctl runs happen under it.
	ctx, cancel := context.WithTimeout(context.Background(), 6*bustest.Timeout)
	defer cancel()
	ch := bustest.Unique("test:events:reconnect")
	q := bustest.Unique("xcomponent.test") + ".commands"
	fan, work := bustest.NewCollector(100), bustest.NewCollector(100)
	for _, s := range []func() (bus.Subscription, error){
		func() (bus.Subscription, error) { return b.Subscribe(ctx, ch, fan.Handle) },
		func() (bus.Subscription, error) { return b.Consume(ctx, q, []string{ch}, work.Handle) },
	} {
		sub, err := s()
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
	}
	pub := func(id string) {
		t.Helper()
		if err := b.Publish(ctx, ch, []byte(`{}`), bus.Meta{MessageID: id}); err != nil {
			t.Fatal(err)
		}
	}
	pub("before")
	for _, c := range []*bustest.Collector{fan, work} {
		if m := c.Next(t); m.MessageID != "before" {
			t.Fatalf("got %s", m.MessageID)
		}
	}

	for round := range 2 {
		ctl(t, "close_all_connections", "--vhost", vh, "--limit", "100", "test: broker restart")
		// Bounded from here: rabbitmqctl alone can take longer than the suite's timeout on a
		// loaded machine.
		rctx, rcancel := context.WithTimeout(context.Background(), bustest.Timeout)
		defer rcancel()
		wait := func(want bool) {
			t.Helper()
			select {
			case up := <-states:
				if up != want {
					t.Fatalf("round %d: state %v, want %v", round, up, want)
				}
			case <-rctx.Done():
				t.Fatalf("round %d: still %v", round, !want)
			}
		}
		wait(false)
		wait(true)
		if !b.Connected() {
			t.Fatal("Connected() false after reconnection")
		}
		// Once connected again, the subscriptions are live again.
		id := fmt.Sprint("after", round)
		pub(id)
		for _, c := range []*bustest.Collector{fan, work} {
			if m := c.Next(t); m.MessageID != id {
				t.Fatalf("got %s, want %s", m.MessageID, id)
			}
		}
	}
}

// Publishing while the broker is unreachable waits for it, and stops with the context or
// Close; the bus keeps retrying without crashing.
func TestPublishWhileDisconnected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A "broker" that hangs up at once.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	defer wg.Wait()
	defer ln.Close()

	var logs strings.Builder
	var logMu sync.Mutex
	b, err := rabbitmq.New(rabbitmq.Options{URL: "amqp://guest:s3cret@" + ln.Addr().String() + "/",
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if b.Connected() {
		t.Fatal("connected to nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := b.Publish(ctx, "fsm:registry:heartbeat", []byte(`{}`), bus.Meta{}); err != context.DeadlineExceeded {
		t.Fatalf("Publish while disconnected: %v", err)
	}
	// Wait (with a deadline) for the first failed attempt to be logged.
	for deadline := time.Now().Add(bustest.Timeout); ; time.Sleep(5 * time.Millisecond) {
		logMu.Lock()
		n := strings.Count(logs.String(), "broker unreachable")
		logMu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no reconnection attempt logged")
		}
	}
	done := make(chan error)
	go func() { done <- b.Publish(context.Background(), "fsm:registry:heartbeat", []byte(`{}`), bus.Meta{}) }()
	_ = b.Close()
	if err := <-done; err != bus.ErrClosed {
		t.Fatalf("Publish across Close: %v", err)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Contains(logs.String(), "s3cret") || !strings.Contains(logs.String(), "guest:***@") {
		t.Fatalf("password not masked in logs:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestNewRefusesNonAMQP(t *testing.T) {
	if _, err := rabbitmq.New(rabbitmq.Options{URL: "http://nope"}); err == nil {
		t.Fatal("New accepted a non-AMQP URL")
	}
}

// Concurrent deliveries are acknowledged together (multiple=true), but a slow message does not
// hold the others' acknowledgements: when its consumer goes, only the slow one is redelivered.
func TestCoalescedAcksDoNotWaitForASlowMessage(t *testing.T) {
	url := vhost(t)
	ctx, cancel := context.WithTimeout(context.Background(), bustest.Timeout)
	defer cancel()
	q, ch := bustest.Unique("xcomponent.test")+".commands", bustest.Unique("test:commands:do")
	const n = 60 // more than the run of completions that may wait behind the slow one
	handled := make(chan string, n)
	slow := make(chan struct{})
	opts := bus.ConsumeOptions{Bindings: []string{ch}, Prefetch: n + 1, OrderKey: func(m bus.Message) string { return m.MessageID }}
	first, err := open(t, rabbitmq.Options{URL: url}).ConsumeWith(ctx, q, opts, func(ctx context.Context, m bus.Message) error {
		if m.MessageID == "slow" {
			close(slow)
			<-ctx.Done() // never finishes: left unacknowledged
			return ctx.Err()
		}
		handled <- m.MessageID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := open(t, rabbitmq.Options{URL: url})
	for i := -1; i < n; i++ {
		id := fmt.Sprint("m", i)
		if i < 0 {
			id = "slow"
		}
		if err := pub.Publish(ctx, ch, []byte(`{}`), bus.Meta{MessageID: id}); err != nil {
			t.Fatal(err)
		}
	}
	<-slow
	for range n {
		select {
		case <-handled:
		case <-ctx.Done():
			t.Fatal("not every message handled")
		}
	}
	// The completions behind the slow message beyond the bound were acknowledged one by one,
	// the few still waiting for it when the subscription closed (a partition handed over)
	// then: only the slow one is redelivered.
	_ = first.Close()
	again := bustest.NewCollector(n + 1)
	s, err := pub.ConsumeWith(ctx, q, opts, again.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if m := again.Next(t); m.MessageID != "slow" || !m.Redelivered {
		t.Fatalf("first redelivery %s (redelivered %v), want slow", m.MessageID, m.Redelivered)
	}
	// Redelivered messages come before new ones: once a new message arrives, all are in.
	if err := pub.Publish(ctx, ch, []byte(`{}`), bus.Meta{MessageID: "sentinel"}); err != nil {
		t.Fatal(err)
	}
	redelivered := 0
	for m := again.Next(t); m.MessageID != "sentinel"; m = again.Next(t) {
		redelivered++
	}
	if redelivered > 0 {
		t.Fatalf("%d handled messages redelivered: their acknowledgements waited for the slow one", redelivered)
	}
}

// A burst of fan-out copies (runtime events published transient, without confirms) arrives
// whole and in order, a failing copy is dropped without holding the others, and every copy
// ends up acknowledged although they are acknowledged a burst at a time.
func TestFanoutBurstTransient(t *testing.T) {
	vh, url := rmqtest.NewVhost(t)
	ctx, cancel := context.WithTimeout(context.Background(), bustest.Timeout)
	defer cancel()
	ch := bustest.Unique("test:events:burst")
	const n = 1000
	got := make(chan string, n)
	sub := open(t, rabbitmq.Options{URL: url})
	s, err := sub.Subscribe(ctx, ch, func(_ context.Context, m bus.Message) error {
		got <- m.MessageID
		if strings.HasSuffix(m.MessageID, "7") {
			return fmt.Errorf("handler refuses %s", m.MessageID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pub := open(t, rabbitmq.Options{URL: url})
	for i := range n {
		if err := pub.PublishTransient(ctx, ch, []byte(`{}`), bus.Meta{MessageID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case id := <-got:
			if id != fmt.Sprint(i) {
				t.Fatalf("copy %d is %s: out of order", i, id)
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d copies received", i, n)
		}
	}
	// Nothing stays unacknowledged: the last burst was acknowledged once the client had no
	// further copy waiting. (rabbitmqctl is slow on a loaded machine: a deadline of its own.)
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		out, err := exec.CommandContext(ctx, "rabbitmqctl", "--quiet", "list_queues", "-p", vh, "--no-table-headers",
			"messages_unacknowledged", "messages").CombinedOutput()
		if err != nil {
			t.Fatalf("list_queues: %v: %s", err, out)
		}
		if strings.Join(strings.Fields(string(out)), " ") == "0 0" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("subscription queue after the burst (unacknowledged, ready): %s", out)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestNamedSubscriptionOutlivesConnection: the copies published while a SubscribeWith
// subscription's connection is cut wait in its named queue and arrive once it is re-established
// (an anonymous subscription of the same connection misses them), after the copies handled but
// not acknowledged yet, again (Redelivered); Close deletes the queue, and
// the broker deletes one whose owner is gone once it expires.
func TestNamedSubscriptionOutlivesConnection(t *testing.T) {
	vh, _ := rmqtest.NewVhost(t)
	proxy := tcpproxy.New(t, brokerAddr)
	states := make(chan bool, 100)
	b := open(t, rabbitmq.Options{URL: "amqp://guest:guest@" + proxy.Addr() + "/" + vh, OnStateChange: func(up bool) { states <- up }})
	pub := open(t, rabbitmq.Options{URL: "amqp://guest:guest@" + brokerAddr + "/" + vh})
	ctx, cancel := context.WithTimeout(context.Background(), 3*bustest.Timeout)
	defer cancel()
	ch := bustest.Unique("test:responses:named")
	q, abandoned := bustest.Unique("xcomponent.test.replies."), bustest.Unique("xcomponent.test.abandoned.")
	named, anon := bustest.NewCollector(100), bustest.NewCollector(100)
	sub, err := b.SubscribeWith(ctx, ch, bus.SubscribeOptions{Queue: q, Expires: time.Minute, MaxLength: 1000}, named.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	asub, err := b.Subscribe(ctx, ch, anon.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer asub.Close()
	if _, err := b.SubscribeWith(ctx, bustest.Unique("test:other:x"), bus.SubscribeOptions{Queue: abandoned, Expires: 300 * time.Millisecond}, anon.Handle); err != nil {
		t.Fatal(err)
	} // never closed: abandoned when the connection goes for good
	publish := func(id string) {
		t.Helper()
		if err := pub.Publish(ctx, ch, []byte(`{}`), bus.Meta{MessageID: id}); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(want bool) {
		t.Helper()
		for {
			select {
			case up := <-states:
				if up == want {
					return
				}
			case <-ctx.Done():
				t.Fatalf("still %v", !want)
			}
		}
	}
	publish("before")
	for _, c := range []*bustest.Collector{named, anon} {
		if m := c.Next(t); m.MessageID != "before" {
			t.Fatalf("got %s, want before", m.MessageID)
		}
	}
	proxy.Cut()
	wait(false)
	publish("gap") // confirmed by the broker while the subscriber is away
	proxy.Restore()
	wait(true)
	publish("after")
	m := named.Next(t)
	if m.MessageID == "before" && m.Redelivered { // handled, its acknowledgement cut: again
		m = named.Next(t)
	}
	if m.MessageID != "gap" {
		t.Fatalf("named subscription got %s (redelivered %v) first, want the copy published during the cut", m.MessageID, m.Redelivered)
	}
	if m := named.Next(t); m.MessageID != "after" {
		t.Fatalf("named subscription got %s, want after", m.MessageID)
	}
	if m := anon.Next(t); m.MessageID != "after" {
		t.Fatalf("anonymous subscription got %s, want after (its queue died with the connection)", m.MessageID)
	}

	_ = sub.Close()
	if ok, err := pub.QueueExists(ctx, q); err != nil || ok {
		t.Fatalf("queue of a closed subscription: exists %v, %v", ok, err)
	}
	if ok, err := pub.QueueExists(ctx, abandoned); err != nil || !ok {
		t.Fatalf("named queue of a live subscription: exists %v, %v", ok, err)
	}
	// The subscriber goes away for good: its queue expires. (Listed with rabbitmqctl: a
	// passive declaration would renew the queue's lease.)
	proxy.Cut()
	wait(false)
	for {
		out, err := exec.CommandContext(ctx, "rabbitmqctl", "--quiet", "list_queues", "-p", vh, "name").Output()
		if err != nil {
			t.Fatalf("list_queues: %v", err)
		}
		if !strings.Contains(string(out), abandoned) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("abandoned named queue never expired")
		}
	}
}
