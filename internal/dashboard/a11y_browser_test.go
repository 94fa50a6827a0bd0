package dashboard_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/httpapi"
)

// axeViolation is one finding of axe-core.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// axe runs axe-core (testdata/axe, from npm) in the page and fails the test for each serious
// or critical finding of the current view.
func (b *browser) axe(view string) {
	b.t.Helper()
	src, err := os.ReadFile("testdata/axe/axe.min.js")
	if err != nil {
		b.t.Fatal(err)
	}
	if b.eval(`String(typeof window.axe)`) != "object" {
		if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](string(src)+";true")); err != nil {
			b.t.Fatalf("load axe-core: %v", err)
		}
	}
	out, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ['violations']}).then(r => JSON.stringify(r.violations))`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("axe-core in %s: %v", view, err)
	}
	var vs []axeViolation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		b.t.Fatalf("axe-core results: %v", err)
	}
	for _, v := range vs {
		if v.Impact != "serious" && v.Impact != "critical" {
			continue
		}
		var where []string
		for i, n := range v.Nodes {
			if i == 3 {
				where = append(where, "…")
				break
			}
			where = append(where, strings.TrimSpace(strings.ReplaceAll(n.Summary, "\n", " "))+" @ "+strings.Trim(strings.Join(strings.Fields(strings.Trim(jsonString(n.Target), "[]")), " "), `"`))
		}
		b.t.Errorf("%s: axe %s (%s): %s — %d node(s): %s", view, v.ID, v.Impact, v.Help, len(v.Nodes), strings.Join(where, "; "))
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestDashboardAccessibility: issue 12, defect 10. axe-core finds nothing serious or critical
// in any view (overview, instance, audit trail, errors, create form, token prompt), the page has
// an h1, the machine cards, tabs and filters work with the keyboard (selected state exposed,
// arrow keys), and the focus stays on the list when an instance is selected.
func TestDashboardAccessibility(t *testing.T) {
	srv, eng := startEngineServer(t, httpapi.Options{}, "approval.yaml", "kyc.yaml")
	ctx := context.Background()
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "ApprovalWorkflow", Machine: "Request",
		Data: map[string]any{"employee": "joe", "amount": 10}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Send(ctx, in.ID, xc.Event{Type: "SUBMIT"}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	b.step("overview", chromedp.Navigate(srv.URL+"/#/component/ApprovalWorkflow"),
		chromedp.WaitVisible(css(`.machine-card[data-machine="Request"] .diagram svg`)), chromedp.WaitVisible(css(`#conn-status.ok`)))
	if b.eval(`String(document.querySelectorAll('h1').length)`) != "1" {
		t.Errorf("the page has no single h1")
	}
	b.axe("overview")

	// keyboard: the status filter with arrow keys, selected state exposed
	b.step("focus the Active filter", chromedp.Focus(css(`#status-filter [data-status="active"]`)),
		chromedp.KeyEvent(kb.ArrowRight))
	b.until("arrow keys move the filter", `document.activeElement?.dataset.status === 'completed'
		&& document.querySelector('#status-filter [data-status="completed"]').getAttribute('aria-pressed') === 'true'`)
	b.step("back to Active", chromedp.KeyEvent(kb.ArrowLeft))
	b.until("Active again", `document.querySelector('#status-filter [data-status="active"]').getAttribute('aria-pressed') === 'true'`)
	// the machine card is reachable by keyboard
	if b.eval(`document.querySelector('.machine-card[data-machine="Request"] .card-title')?.tagName || ''`) != "BUTTON" {
		t.Errorf("machine cards are not focusable")
	}
	// selecting an instance keeps the focus on it
	b.until("the instance listed", `!!document.querySelector('#instance-list .inst')`)
	b.step("select with the keyboard", chromedp.Focus(css(`#instance-list .inst`)), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(css(`#detail-state[data-state="ManagerReview"]`)))
	b.until("the focus kept on the selected instance", `document.activeElement?.classList.contains('inst') && document.activeElement.classList.contains('sel')`)
	b.until("the diagram of the instance", `document.querySelector('.machine-card[data-machine="Request"] .diagram')?.dataset.rendered?.endsWith('|ManagerReview')`)
	b.axe("instance")

	// tabs: arrow keys, aria-selected
	b.step("tabs by keyboard", chromedp.Focus(css(`#tab-detail`)), chromedp.KeyEvent(kb.ArrowRight))
	b.until("the audit trail tab selected", `document.querySelector('#tab-audit').getAttribute('aria-selected') === 'true' && document.activeElement?.id === 'tab-audit'`)
	b.step("the audit trail", chromedp.WaitVisible(css(`#audit-trail li`)), chromedp.WaitVisible(css(`#sequence svg`)))
	b.axe("audit trail")
	b.step("back", chromedp.Click(css(`#tab-detail`)))

	b.step("errors view", chromedp.Click(css(`#stat-errors-btn`)))
	b.until("the Errors filter", `document.querySelector('#status-filter [data-status="error"]').getAttribute('aria-pressed') === 'true'`)
	b.axe("errors")

	b.step("KYC", chromedp.Navigate(srv.URL+"/#/component/KYC"), chromedp.WaitVisible(css(`.machine-card[data-machine="Desk"] .diagram svg`)))
	b.until("KYC diagrams", `[...document.querySelectorAll('#machines .diagram')].every(d => d.dataset.rendered?.startsWith('KYC|'))`)
	b.axe("KYC overview")

	b.step("the create form", chromedp.Navigate(srv.URL+"/#/component/ApprovalWorkflow"),
		chromedp.WaitVisible(css(`#conn-status.ok`)), chromedp.Click(css("#new-instance-btn")),
		chromedp.WaitVisible(css(`#create-form input[name="employee"]`)))
	b.axe("create form")
	b.shot("70-a11y-create-form")
	b.checkPageErrors()
}
