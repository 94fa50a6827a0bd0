package dashboard_test

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/httpapi"
)

// TestDashboardAuditPaged: the audit trail of a long-lived instance shows its first page of
// events and loads the next ones on demand (an instance with 100,000 events no longer loads
// them all at once), and its export, streamed by the server, has every event.
func TestDashboardAuditPaged(t *testing.T) {
	srv, eng := startEngineServer(t, httpapi.Options{}, "trading.yaml")
	ctx := context.Background()
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "Trading", Machine: "OrderEntry",
		Data: map[string]any{"orderId": "O-1", "symbol": "ACME", "quantity": 10, "limit": 100}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "ACCEPT"}); err != nil {
		t.Fatal(err)
	}
	const ticks = 148 // with the creation and ACCEPT: 150 events
	for range ticks {
		if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "MARKET_PRICE", Payload: map[string]any{"symbol": "ACME", "price": 120}}); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t)
	b.step("open the instance's audit trail",
		chromedp.Navigate(srv.URL+"/#/component/Trading/machine/OrderEntry/instance/"+in.ID),
		chromedp.WaitVisible(chromedp.CSS(`#detail-state[data-state="Working"]`)),
		chromedp.Click(chromedp.CSS("#tab-audit")))
	b.until("the first page", `document.querySelector('#audit-count')?.textContent === '100 of 150 events, oldest first'
		&& document.querySelectorAll('#audit-trail li').length === 100
		&& document.querySelector('#audit-trail li').dataset.event === 'INSTANCE_CREATED'`)
	b.step("load more", chromedp.Click(chromedp.CSS("#audit-more")))
	b.until("the rest", `document.querySelector('#audit-count')?.textContent === '150 event(s), oldest first'
		&& document.querySelectorAll('#audit-trail li').length === 150 && document.querySelector('#audit-more').hidden`)
	b.shot("30-audit-paged")
	// The export the buttons save: the server streams every event.
	b.eval(`(() => { window.__export = ''; fetch('/api/instances/` + in.ID + `/history/export?format=csv')
		.then((r) => r.text()).then((s) => { window.__export = String(s.trim().split('\n').length) }); return '' })()`)
	b.until("the CSV export of every event", `window.__export === '151'`)
	b.step("export as JSON", chromedp.Click(chromedp.CSS("#audit-export-json")))
	b.until("the export done", `!document.querySelector('#audit-export-json').disabled`)
	if got := b.eval(`document.querySelector('#audit-count').textContent`); got != "150 event(s), oldest first" {
		t.Errorf("after the export: %q", got)
	}
	b.checkPageErrors()
}
