package dashboard_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/httpapi"
)

// TestDashboardViewer: a viewer sees its role and no write control it cannot use (issue 12,
// defect 7: it saw them all and got a raw 403 below the fold).
func TestDashboardViewer(t *testing.T) {
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
	b.step("log in as a viewer",
		chromedp.Navigate(srv.URL+"/#/component/ApprovalWorkflow/machine/Request/instance/"+in.ID),
		chromedp.WaitVisible(css("#token-input")),
		chromedp.SendKeys(css("#token-input"), "s3cret-view"),
		chromedp.Click(css("#token-save")),
		chromedp.WaitVisible(css(`#detail-state[data-state="Draft"]`)))
	b.until("the role shown", `document.querySelector('#session')?.textContent.includes('viewer')`)
	b.until("write controls disabled", `document.querySelector('#new-instance-btn').disabled
		&& document.querySelector('#quick-actions button[data-event="SUBMIT"]')?.disabled === true
		&& !!document.querySelector('#role-note')`)
	b.shot("40-viewer")
	b.mu.Lock()
	var errs []string
	for _, e := range b.errors {
		if strings.HasPrefix(e, "exception") {
			errs = append(errs, e)
		}
	}
	b.errors = errs // the 401 before the token is expected
	b.mu.Unlock()
	b.checkPageErrors()
}
