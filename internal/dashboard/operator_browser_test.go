package dashboard_test

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/httpapi"
)

// TestDashboardOperatorActions: an operator terminates an instance from its detail with a
// reason (confirmation step), sees the result beside the diagram and the reason in the audit
// trail; a viewer sees the operator controls disabled; axe-core finds nothing serious.
func TestDashboardOperatorActions(t *testing.T) {
	tokens, err := httpapi.ParseTokens("operator=s3cret-op,viewer=s3cret-view")
	if err != nil {
		t.Fatal(err)
	}
	srv, eng := startEngineServer(t, httpapi.Options{Tokens: tokens}, "approval.yaml")
	in, err := eng.Create(context.Background(), xc.CreateRequest{Component: "ApprovalWorkflow", Machine: "Request",
		Data: map[string]any{"employee": "joe", "amount": 10}})
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	b.step("log in as an operator",
		chromedp.Navigate(srv.URL+"/#/component/ApprovalWorkflow/machine/Request/instance/"+in.ID),
		chromedp.WaitVisible(css("#token-input")),
		chromedp.SendKeys(css("#token-input"), "s3cret-op"),
		chromedp.Click(css("#token-save")),
		chromedp.WaitVisible(css(`#detail-state[data-state="Draft"]`)),
		chromedp.WaitVisible(css("#op-terminate")))
	b.axe("operator actions")
	b.step("terminate with a reason",
		chromedp.SendKeys(css("#op-reason"), "duplicate request"),
		chromedp.Click(css("#op-terminate")),
		chromedp.WaitVisible(css("#op-confirm-yes")),
		chromedp.Click(css("#op-confirm-yes")))
	b.until("terminated, result shown", `document.querySelector('#detail-status')?.textContent === 'terminated'
		&& document.querySelector('#action-result')?.textContent.includes('Terminated')`)
	b.shot("50-terminated")
	b.step("open the audit trail", chromedp.Click(css("#tab-audit")))
	b.until("reason and actor in the audit trail", `(() => {
		const li = document.querySelector('#audit-trail li[data-event="INSTANCE_TERMINATED"]');
		return !!li && li.textContent.includes('duplicate request') && li.textContent.includes('actor operator:');
	})()`)
	b.axe("audit trail with reason")
	got, err := eng.Get(context.Background(), in.ID)
	if err != nil || got.Status != "terminated" {
		t.Fatalf("engine: %+v %v", got, err)
	}

	// A viewer: the controls are there, disabled, with the reason why.
	in2, err := eng.Create(context.Background(), xc.CreateRequest{Component: "ApprovalWorkflow", Machine: "Request",
		Data: map[string]any{"employee": "ann", "amount": 20}})
	if err != nil {
		t.Fatal(err)
	}
	v := newBrowser(t)
	v.step("log in as a viewer",
		chromedp.Navigate(srv.URL+"/#/component/ApprovalWorkflow/machine/Request/instance/"+in2.ID),
		chromedp.WaitVisible(css("#token-input")),
		chromedp.SendKeys(css("#token-input"), "s3cret-view"),
		chromedp.Click(css("#token-save")),
		chromedp.WaitVisible(css(`#detail-state[data-state="Draft"]`)))
	v.until("operator controls disabled with a hint", `document.querySelector('#op-terminate')?.disabled === true
		&& document.querySelector('#op-reason')?.disabled === true && !!document.querySelector('#op-role-note')`)
	v.axe("viewer operator actions")
}
