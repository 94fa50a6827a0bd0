package dashboard_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/httpapi"
)

// TestDashboardViewer: a viewer sees its role and no write control it cannot use (issue 12,
// defect 7: it saw them all and got a raw 403 below the fold).
func TestDashboardViewer(t *testing.T) {
	srv, eng := startRolesServer(t)
	id := draftRequest(t, eng, "joe", 10)
	b := newBrowser(t)
	b.step("log in as a viewer", openRequestAs(srv.URL, id, "s3cret-view")...)
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

// startRolesServer starts the approval example with an operator token (s3cret-op) and a
// viewer token (s3cret-view).
func startRolesServer(t *testing.T) (*httptest.Server, *xc.Engine) {
	t.Helper()
	tokens, err := httpapi.ParseTokens("operator=s3cret-op,viewer=s3cret-view")
	if err != nil {
		t.Fatal(err)
	}
	return startEngineServer(t, httpapi.Options{Tokens: tokens}, "approval.yaml")
}

// draftRequest creates an approval request, in Draft, and returns its id.
func draftRequest(t *testing.T, eng *xc.Engine, employee string, amount int) string {
	t.Helper()
	in, err := eng.Create(context.Background(), xc.CreateRequest{Component: "ApprovalWorkflow", Machine: "Request",
		Data: map[string]any{"employee": employee, "amount": amount}})
	if err != nil {
		t.Fatal(err)
	}
	return in.ID
}

// openRequestAs opens the detail of approval request id and logs in with token, until the
// request's Draft state shows.
func openRequestAs(url, id, token string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(url + "/#/component/ApprovalWorkflow/machine/Request/instance/" + id),
		chromedp.WaitVisible(chromedp.CSS("#token-input")),
		chromedp.SendKeys(chromedp.CSS("#token-input"), token),
		chromedp.Click(chromedp.CSS("#token-save")),
		chromedp.WaitVisible(chromedp.CSS(`#detail-state[data-state="Draft"]`)),
	}
}
