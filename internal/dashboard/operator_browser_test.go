package dashboard_test

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestDashboardOperatorActions: an operator terminates an instance from its detail with a
// reason (confirmation step), sees the result beside the diagram and the reason in the audit
// trail; a viewer sees the operator controls disabled; axe-core finds nothing serious.
func TestDashboardOperatorActions(t *testing.T) {
	srv, eng := startRolesServer(t)
	id := draftRequest(t, eng, "joe", 10)
	b := newBrowser(t)
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	b.step("log in as an operator", append(openRequestAs(srv.URL, id, "s3cret-op"), chromedp.WaitVisible(css("#op-terminate")))...)
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
	got, err := eng.Get(context.Background(), id)
	if err != nil || got.Status != "terminated" {
		t.Fatalf("engine: %+v %v", got, err)
	}

	// A viewer: the controls are there, disabled, with the reason why.
	id2 := draftRequest(t, eng, "ann", 20)
	v := newBrowser(t)
	v.step("log in as a viewer", openRequestAs(srv.URL, id2, "s3cret-view")...)
	v.until("operator controls disabled with a hint", `document.querySelector('#op-terminate')?.disabled === true
		&& document.querySelector('#op-reason')?.disabled === true && !!document.querySelector('#op-role-note')`)
	v.axe("viewer operator actions")
}
