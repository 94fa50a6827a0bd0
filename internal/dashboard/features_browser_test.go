package dashboard_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/httpapi"
)

// TestDashboardOperatorFeatures: issue 12's features — one event sent to several picked
// instances, the History view over a time range across components with its export, the API
// reference rendered offline from /api/openapi.json, and the dark theme (axe-core clean).
func TestDashboardOperatorFeatures(t *testing.T) {
	srv, eng := startEngineServer(t, httpapi.Options{}, "approval.yaml", "order.yaml", "payment.yaml")
	ctx := context.Background()
	for _, who := range []string{"ann", "bob", "cid"} {
		if _, err := eng.Create(ctx, xc.CreateRequest{Component: "ApprovalWorkflow", Machine: "Request",
			Data: map[string]any{"employee": who, "amount": 10}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := eng.Create(ctx, xc.CreateRequest{Component: "Orders", Machine: "Order",
		Data: map[string]any{"orderId": "ORD-9", "customer": "dan", "amount": 5}}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	b.step("open", chromedp.Navigate(srv.URL+"/#/component/ApprovalWorkflow"), chromedp.WaitVisible(css(`#conn-status.ok`)))
	b.until("the three requests", `document.querySelectorAll('#instance-list .inst').length === 3`)

	// bulk: SUBMIT to two picked requests
	b.step("pick two", chromedp.Click(css(`#instance-list li:nth-child(1) .pick`)), chromedp.Click(css(`#instance-list li:nth-child(2) .pick`)),
		chromedp.WaitVisible(css(`#bulk-send`)))
	b.until("SUBMIT offered", `[...document.querySelectorAll('#bulk-event option')].some(o => o.value === 'SUBMIT') && document.querySelector('#bulk-count').textContent === '2 picked'`)
	b.step("send", chromedp.Click(css(`#bulk-send`)))
	b.until("applied to both", `document.querySelector('#bulk-result.ok')?.textContent.includes('SUBMIT: applied to 2 of 2')`)
	b.until("the counts follow", `document.querySelector('.machine-card[data-machine="Request"] .count[data-state="ManagerReview"] b')?.textContent === '2'`)
	b.shot("80-bulk")

	// history across components, exported
	b.step("history", chromedp.Click(css(`#history-btn`)), chromedp.WaitVisible(css(`#h-table`)))
	b.eval(`(() => { document.querySelector('#h-component').value = ''; return '' })()`)
	b.step("search every component", chromedp.Click(css(`#h-search`)))
	b.until("instances of both components", `(() => { const comps = new Set([...document.querySelectorAll('#h-table tbody tr td:nth-child(2)')].map(td => td.textContent));
		return comps.has('ApprovalWorkflow') && comps.has('Orders') })()`)
	b.eval(`(() => { window.__downloads = []; URL.createObjectURL = (blob) => { window.__downloads.push(blob); return 'blob:x' }; return '' })()`)
	b.step("export CSV", chromedp.Click(css(`#h-export-csv`)))
	b.until("exported with the events", `/Exported \d+ instance\(s\) and \d+ event\(s\)/.test(document.querySelector('#h-result').textContent) && window.__downloads.length === 2`)
	b.shot("81-history")
	b.step("close", chromedp.Click(css(`#h-close`)))

	// API reference
	b.step("API docs", chromedp.Click(css(`#api-btn`)), chromedp.WaitVisible(css(`#api-body .api-list`)))
	if txt := b.eval(`document.querySelector('#api-body').textContent`); !strings.Contains(txt, "/api/counts") || !strings.Contains(txt, "/api/events") {
		t.Errorf("API reference: %.300s", txt)
	}
	b.shot("82-api-reference")
	b.step("close the API docs", chromedp.Click(css(`#api-close`)))

	// dark theme
	b.step("dark theme", chromedp.Click(css(`#theme-btn`)))
	b.until("dark", `document.documentElement.dataset.theme === 'dark' && document.querySelector('#theme-btn').getAttribute('aria-pressed') === 'true'`)
	b.until("the diagrams redrawn", `[...document.querySelectorAll('#machines .diagram')].every(d => d.dataset.rendered)`)
	b.axe("dark theme")
	b.shot("83-dark")
	b.checkPageErrors()
}

// TestDashboardConnections: the connections map draws the machines of every component with
// their links (PLACE from Order to Payment across components, the cascades back), and opens
// the machine clicked.
func TestDashboardConnections(t *testing.T) {
	srv := startServer(t, httpapi.Options{}, "order.yaml", "payment.yaml", "kyc.yaml")
	b := newBrowser(t)
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	b.step("open", chromedp.Navigate(srv.URL+"/#/component/Orders"), chromedp.WaitVisible(css(`#conn-status.ok`)),
		chromedp.Click(css(`#connections summary`)), chromedp.WaitVisible(css(`#connections-map svg`)))
	txt := b.eval(`document.querySelector('#connections-map svg').textContent`)
	for _, want := range []string{"Orders", "Payments", "KYC", "Order", "Payment", "PLACE", "PAYMENT_CONFIRMED", "cascade", "OPEN_CASE"} {
		if !strings.Contains(txt, want) {
			t.Errorf("connections map lacks %q: %s", want, txt)
		}
	}
	b.shot("90-connections")
	b.step("click the Payment machine", chromedp.Click(css(`#connections-map g.conn-node[data-machine="Payment"]`)))
	b.until("the Payments component opened", `location.hash.startsWith('#/component/Payments/machine/Payment')
		&& !!document.querySelector('.machine-card[data-machine="Payment"]')`)
	b.axe("connections")
	b.checkPageErrors()
}
