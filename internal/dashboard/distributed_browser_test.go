package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/internal/busbackend"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/store/postgres"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
)

// distRuntime is a distributed runtime started by the test.
type distRuntime struct {
	name   string
	cancel context.CancelFunc
	done   chan error
}

func (r *distRuntime) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("runtime %s: %v", r.name, err)
		}
		r.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatalf("runtime %s did not stop", r.name)
	}
}

func startDistRuntime(t *testing.T, name, url, dsn string, log *slog.Logger) *distRuntime {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &distRuntime{name: name, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		r.done <- distributed.Run(ctx, distributed.Config{ComponentFile: "../../examples/approval.yaml", BrokerURL: url,
			StoreSpec: dsn, RuntimeName: name, HeartbeatInterval: time.Second, Logger: log,
			Ready: func(distributed.Info) { close(ready) }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Errorf("runtime %s did not stop", name)
		}
	})
	select {
	case <-ready:
	case err := <-r.done:
		t.Fatalf("runtime %s: %v", name, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("runtime %s not ready", name)
	}
	return r
}

// TestDistributedDashboardInBrowser drives the standalone dashboard (`xcomponent dashboard`'s
// backend over RabbitMQ and PostgreSQL) in headless Chromium, with two runtimes of one
// component: the runtimes panel lists both, a Quick Action on an instance moves it, and the
// audit trail shows which runtime applied each event — here both, since the runtime that created
// the instance is stopped before the last action. Screenshots: 20-dashboard-two-runtimes,
// 20-runtimes-panel, 21-instance-two-runtimes, 21-audit-trail-two-runtimes,
// 22-runtimes-panel-one-stopped.
func TestDistributedDashboardInBrowser(t *testing.T) {
	b := newBrowser(t) // skips without chromium, before the services are set up
	_, url := rmqtest.NewVhost(t)
	dsn := pgtest.NewDatabase(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rlog := quiet
	if testing.Verbose() {
		rlog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	runtimes := map[string]*distRuntime{
		"runtime-approval":   startDistRuntime(t, "runtime-approval", url, dsn, rlog.With("rt", "runtime-approval")),
		"runtime-approval-2": startDistRuntime(t, "runtime-approval-2", url, dsn, rlog.With("rt", "runtime-approval-2")),
	}

	bb, err := rabbitmq.New(rabbitmq.Options{URL: url, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bb.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := postgres.Open(ctx, dsn, postgres.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	be, err := busbackend.New(ctx, busbackend.Config{Bus: bb, BrokerURL: url, Store: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	srv := httptest.NewServer(httpapi.New(be, httpapi.Options{Logger: quiet}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})

	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	// elemShot saves a screenshot of one element (the full-page ones are b.shot).
	elemShot := func(name, sel string) {
		t.Helper()
		png, err := chromedp.Run(b.ctx, chromedp.ScreenshotScale(css(sel), 1.5))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(b.artifacts, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.step("load the page",
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(css("#conn-status.ok")),
		chromedp.WaitVisible(css(`.machine-card[data-machine="Request"] .diagram svg`)),
	)
	// 1. The runtimes panel (open in distributed mode) lists both runtimes, up.
	b.until("two runtimes up in the panel", `document.querySelectorAll('#runtimes tr.rt[data-status="up"]').length === 2`)
	panel := b.eval(`document.querySelector('#runtimes').textContent`)
	for _, want := range []string{"runtime-approval", "runtime-approval-2", "ApprovalWorkflow", "2/2 up", "ago"} {
		if !strings.Contains(panel, want) {
			t.Errorf("runtimes panel lacks %q: %s", want, panel)
		}
	}
	if got := b.eval(`document.querySelector('#stat-runtimes').textContent`); got != "2 up" {
		t.Errorf("header runtimes = %q, want 2 up", got)
	}

	// 2. Create an instance through the form; it is created by one of the runtimes.
	b.step("create from the form",
		chromedp.Click(css("#new-instance-btn")),
		chromedp.SendKeys(css(`#create-form input[name="employee"]`), "Ada"),
		chromedp.SendKeys(css(`#create-form input[name="amount"]`), "640"),
		chromedp.SendKeys(css(`#create-form input[name="reason"]`), "team offsite"),
		chromedp.Click(css("#create-submit")),
		chromedp.WaitNotVisible(css("#create-dialog")),
		chromedp.WaitVisible(css(`#detail-state[data-state="Draft"]`)),
	)
	hash := b.eval(`location.hash`)
	id := hash[strings.LastIndex(hash, "/")+1:]
	b.shot("20-dashboard-two-runtimes")
	elemShot("20-runtimes-panel", ".runtimes-panel")

	// 3. Quick Action SUBMIT: the runtime applies it, the auto ROUTE follows.
	b.step("fire SUBMIT", chromedp.Click(css(`#quick-actions button[data-event="SUBMIT"]`)))
	b.until("the new state", `document.querySelector('#detail-state')?.dataset.state === 'ManagerReview'`)
	b.until("the result of the action", `document.querySelector('#action-result.ok')?.textContent.includes('Draft → Submitted')`)

	// 4. The runtime that created the instance stops; the other applies APPROVE (it may have
	// applied SUBMIT too, or take the instance over).
	first := appliedBy(t, srv.URL, id, "INSTANCE_CREATED")
	r := runtimes[first]
	if r == nil {
		t.Fatalf("instance created by %q, not one of the runtimes", first)
	}
	r.stop(t)
	b.until("the stopped runtime shown", fmt.Sprintf(`document.querySelector('#runtimes tr.rt[data-runtime=%q]')?.dataset.status === 'stopped'`, first))
	elemShot("22-runtimes-panel-one-stopped", ".runtimes-panel")
	b.step("fire APPROVE", chromedp.Click(css(`#quick-actions button[data-event="APPROVE"]`)))
	b.until("approved", `document.querySelector('#detail-state')?.dataset.state === 'Approved'`)
	second := appliedBy(t, srv.URL, id, "APPROVE")
	if second == first || runtimes[second] == nil {
		t.Fatalf("APPROVE applied by %q, want the other runtime than %q", second, first)
	}

	// 5. The audit trail names the runtime of each event.
	b.step("open the audit trail",
		chromedp.Click(css("#tab-audit")),
		chromedp.WaitVisible(css(`#audit-trail li[data-event="APPROVE"]`)),
	)
	b.until("the runtime badges", `document.querySelectorAll('#audit-trail .badge.runtime').length >= 2`)
	trail := b.eval(`document.querySelector('#audit-trail').textContent`)
	for _, want := range []string{"⚙ " + first, "⚙ " + second, "Draft → Submitted", "ManagerReview → Approved"} {
		if !strings.Contains(trail, want) {
			t.Errorf("audit trail lacks %q: %s", want, trail)
		}
	}
	b.shot("21-instance-two-runtimes")
	elemShot("21-audit-trail-two-runtimes", "#audit")
	b.checkPageErrors()
}

// appliedBy returns the runtime the audit trail names for the event of type typ.
func appliedBy(t *testing.T, base, id, typ string) string {
	t.Helper()
	res, err := http.Get(base + "/api/instances/" + id + "/history")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		History []struct {
			Event struct {
				Type string `json:"type"`
			} `json:"event"`
			Runtime string `json:"runtime"`
		} `json:"history"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	for _, h := range out.History {
		if h.Event.Type == typ {
			return h.Runtime
		}
	}
	t.Fatalf("no %s in the history of %s: %+v", typ, id, out.History)
	return ""
}
