package dashboard_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/httpapi"
)

// TestDashboardFlowsAndErrors follows an order into the payment it created in another
// component and back (issue 12, defect 5), opens the instance each log row names, lists the
// instances in an error state with their count in the header (defect 6), and shows an
// automatic transition with its due time and where an action's instance ended (defect 9).
func TestDashboardFlowsAndErrors(t *testing.T) {
	srv, eng := startEngineServer(t, httpapi.Options{}, "order.yaml", "payment.yaml")
	ctx := context.Background()
	order, err := eng.Create(ctx, xc.CreateRequest{Component: "Orders", Machine: "Order",
		Data: map[string]any{"orderId": "ORD-1", "customer": "ann", "amount": 10}})
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	b.step("open the order", chromedp.Navigate(srv.URL+"/#/component/Orders/machine/Order/instance/"+order.ID),
		chromedp.WaitVisible(css(`#detail-state[data-state="Created"]`)), chromedp.WaitVisible(css(`#conn-status.ok`)))
	b.step("place it", chromedp.Click(css(`#quick-actions button[data-event="PLACE"]`)))
	// One reading of the block: the detail is rebuilt on every change of the order.
	b.until("the order links to the payment it created", `(() => { const r = document.querySelector('#detail-related');
		const li = r?.querySelector('li[data-rel="child"]');
		if (!li?.querySelector('button.link')) return false;
		window.__related = { id: li.dataset.id, text: r.textContent };
		return true })()`)
	payment := b.eval(`window.__related.id`)
	if txt := b.eval(`window.__related.text`); !strings.Contains(txt, "Payments") || !strings.Contains(txt, "PLACE") {
		t.Errorf("related of the order: %q", txt)
	}
	b.shot("30-order-flow")

	// every log row opens the instance it names: the creation in Payments opens the payment
	b.until("the cross-component creation in the log", fmt.Sprintf(`!!document.querySelector('#event-log li[data-type="cross_component_sent"] button[data-id=%q]')`, payment))
	b.step("open the payment from the log", chromedp.Click(css(fmt.Sprintf(`#event-log li[data-type="cross_component_sent"] button[data-id=%q]`, payment))))
	b.until("the payment, in its component", fmt.Sprintf(`location.hash.startsWith('#/component/Payments/machine/Payment/instance/%s')
		&& document.querySelector('#detail-state')?.dataset.state === 'Pending'`, payment))
	b.until("the payment links back to its order", fmt.Sprintf(`!!document.querySelector('#detail-related li[data-rel="parent"][data-id=%q]')`, order.ID))

	// decline: the payment ends in error, and by cascade the order too
	trigger(t, srv.URL, payment, "DECLINE")
	b.until("the errors in the header", `document.querySelector('#stat-errors').textContent === '2'`)
	b.until("the cascade in the log", `!!document.querySelector('#event-log li[data-type="cascade_completed"] button.link')`)
	b.step("open the cascade's row", chromedp.Click(css(`#event-log li[data-type="cascade_completed"] button.link`)))
	b.until("the row opens the payment that cascaded", fmt.Sprintf(`location.hash.includes('/component/Payments/') && location.hash.includes(%q)
		&& document.querySelector('#detail-state')?.dataset.state === 'Declined'`, payment))
	b.step("the Errors filter", chromedp.Click(css(`#stat-errors-btn`)))
	b.until("the payment listed under Errors", fmt.Sprintf(`document.querySelector('#status-filter [data-status="error"]').getAttribute('aria-pressed') === 'true'
		&& !!document.querySelector('#instance-list .inst[data-id=%q]') && document.querySelector('#status-filter [data-status="error"] .n').textContent === '1'`, payment))
	b.shot("31-errors")

	// an automatic transition is shown with its due time; the action's result says where it ended
	order2, err := eng.Create(ctx, xc.CreateRequest{Component: "Orders", Machine: "Order",
		Data: map[string]any{"orderId": "ORD-2", "customer": "bob", "amount": 20}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Send(ctx, order2.ID, xc.Event{Type: "PLACE"}); err != nil {
		t.Fatal(err)
	}
	b.step("open the second order", chromedp.Navigate(srv.URL+"/#/component/Orders/machine/Order/instance/"+order2.ID))
	b.until("its payment", `!!document.querySelector('#detail-related li[data-rel="child"] button.link')`)
	b.step("open its payment", chromedp.Click(css(`#detail-related li[data-rel="child"] button.link`)),
		chromedp.WaitVisible(css(`#detail-state[data-state="Pending"]`)))
	b.step("authorize", chromedp.Click(css(`#quick-actions button[data-event="AUTHORIZE"]`)))
	b.until("the automatic SETTLE with its countdown", `(() => { const li = document.querySelector('.timeouts li[data-kind="auto"]');
		return !!li && li.textContent.includes('SETTLE') && /\ds/.test(li.querySelector('.countdown').textContent) })()`)
	b.shot("32-auto-timer")
	b.until("settled, and the result says so", `document.querySelector('#detail-state')?.dataset.state === 'Settled'
		&& document.querySelector('#action-result.ok')?.textContent.includes('Pending → Authorized; now in Settled')`)
	b.until("the automatic step logged as such", `[...document.querySelectorAll('#event-log li[data-type="auto_fired"]')].some(li => li.textContent.includes('SETTLE'))`)
	b.checkPageErrors()
}
