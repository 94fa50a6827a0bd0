package dashboard_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/httpapi"
)

// TestDashboardDiagramsReadable: issue 12, defect 4. No emoji (Debian's Chromium has no emoji
// font: they drew empty boxes), durations for people ("7d", not "604800000ms"), no edge label
// overlapping another, the KYC Desk's OPEN_CASE self-loop drawn, guards and matching rules in
// tooltips, and the countdown of the next timer on the current state.
func TestDashboardDiagramsReadable(t *testing.T) {
	srv, eng := startEngineServer(t, httpapi.Options{}, "approval.yaml", "kyc.yaml", "order.yaml", "payment.yaml")
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
	const overlaps = `(() => {
		const out = [];
		for (const d of document.querySelectorAll('#machines .diagram svg')) {
			const boxes = [...d.querySelectorAll('.edgeLabel')].map(g => [[...g.childNodes].filter(n => n.nodeName !== 'title').map(n => n.textContent).join('').trim(), g.getBoundingClientRect()]).filter(([t]) => t);
			for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
				const [a, r] = boxes[i], [b, s] = boxes[j];
				if (r.width && s.width && r.left < s.right - 1 && s.left < r.right - 1 && r.top < s.bottom - 1 && s.top < r.bottom - 1) out.push(a + ' / ' + b);
			}
		}
		return out.join('; ');
	})()`
	const emoji = `/[\u{1F300}-\u{1FAFF}\u{23F0}-\u{23FA}\u{26A1}]/u.test([...document.querySelectorAll('#machines svg')].map(s => s.textContent).join(' '))`
	for _, comp := range []string{"ApprovalWorkflow", "KYC", "Orders", "Payments"} {
		b.step("open "+comp, chromedp.Navigate(srv.URL+"/#/component/"+comp),
			chromedp.WaitVisible(chromedp.CSS(`#machines .machine-card .diagram svg`)))
		b.until("every diagram of "+comp, `document.querySelector('#machines').dataset.component === '`+comp+`'
			&& [...document.querySelectorAll('#machines .diagram')].every(d => d.dataset.rendered?.startsWith('`+comp+`|'))`)
		if got := b.eval(overlaps); got != "" {
			t.Errorf("%s: edge labels overlap: %s", comp, got)
		}
		if b.eval(`String(`+emoji+`)`) != "false" {
			t.Errorf("%s: emoji in the diagrams", comp)
		}
		b.shot("50-diagrams-" + strings.ToLower(comp))
	}
	b.step("KYC", chromedp.Navigate(srv.URL+"/#/component/KYC"), chromedp.WaitVisible(chromedp.CSS(`.machine-card[data-machine="Desk"] .diagram svg`)))
	if txt := b.eval(`document.querySelector('.machine-card[data-machine="Desk"] .diagram svg').textContent`); !strings.Contains(txt, "↻ OPEN_CASE") {
		t.Errorf("the Desk's OPEN_CASE self-loop is not drawn: %q", txt)
	}
	b.step("the request", chromedp.Navigate(srv.URL+"/#/component/ApprovalWorkflow/machine/Request/instance/"+in.ID),
		chromedp.WaitVisible(chromedp.CSS(`#detail-state[data-state="ManagerReview"]`)))
	b.until("the diagram of the current state", `document.querySelector('.machine-card[data-machine="Request"] .diagram')?.dataset.rendered?.endsWith('|ManagerReview')`)
	txt := b.eval(`document.querySelector('.machine-card[data-machine="Request"] .diagram svg').textContent`)
	if !strings.Contains(txt, "REVIEW_TIMEOUT · 7d") || strings.Contains(txt, "604800000") {
		t.Errorf("durations: %q", txt)
	}
	b.until("the countdown on the current state", `/REVIEW_TIMEOUT in \d+d \d+h/.test(document.querySelector('.machine-card[data-machine="Request"] .state-countdown text')?.textContent || '')`)
	if tip := b.eval(`[...document.querySelectorAll('.machine-card[data-machine="Request"] .edgeLabel title')].map(t => t.textContent).join('|')`); !strings.Contains(tip, "guard: context.amount > 5000") {
		t.Errorf("guards not in the tooltips: %q", tip)
	}
	b.shot("51-diagram-countdown")
	b.checkPageErrors()
}
