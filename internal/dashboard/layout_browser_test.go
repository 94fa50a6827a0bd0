package dashboard_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/httpapi"
)

// TestDashboardLayout: issue 12, defect 8. On a 1280×720 laptop the Quick Actions of a KYC
// case and the result of an action are on screen beside the diagrams (they started at y=1,315);
// on a 390 px phone the page is one column no wider than the screen (it was 1,053 px wide).
func TestDashboardLayout(t *testing.T) {
	srv, eng := startEngineServer(t, httpapi.Options{}, "kyc.yaml", "approval.yaml")
	ctx := context.Background()
	desk := eng.Live("KYC", "Desk")
	if len(desk) != 1 {
		t.Fatalf("the KYC desk: %v", desk)
	}
	if _, err := eng.Send(ctx, desk[0].ID, xc.Event{Type: "OPEN_CASE", Payload: map[string]any{"customer": "ann", "country": "FR"}}); err != nil {
		t.Fatal(err)
	}
	if err := eng.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	cases := eng.Live("KYC", "Case")
	if len(cases) != 1 {
		t.Fatalf("the case: %v", cases)
	}
	b := newBrowser(t)
	num := func(js string) float64 {
		t.Helper()
		f, err := strconv.ParseFloat(b.eval(`String(`+js+`)`), 64)
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return f
	}
	b.step("a laptop screen", chromedp.EmulateViewport(1280, 720),
		chromedp.Navigate(srv.URL+"/#/component/KYC/machine/Case/instance/"+cases[0].ID),
		chromedp.WaitVisible(chromedp.CSS(`#detail-state[data-state="Collecting"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#conn-status.ok`)))
	b.until("the diagrams drawn", `[...document.querySelectorAll('#machines .diagram')].every(d => d.dataset.rendered)`)
	if y := num(`document.querySelector('#quick-actions').getBoundingClientRect().bottom`); y > 720 {
		t.Errorf("Quick Actions end at y=%.0f, below a 720 px screen", y)
	}
	if x := num(`document.querySelector('#quick-actions').getBoundingClientRect().left`); x < num(`document.querySelector('#machines').getBoundingClientRect().right`) {
		t.Errorf("Quick Actions (x=%.0f) are not beside the diagrams", x)
	}
	b.step("fire an action", chromedp.Click(chromedp.CSS(`#quick-actions button[data-event="DOCUMENTS_RECEIVED"]`)))
	b.until("its result", `!!document.querySelector('#action-result.ok')`)
	if y := num(`document.querySelector('#action-result').getBoundingClientRect().bottom`); y > 700 {
		t.Errorf("the result line ends at y=%.0f, at the bottom edge of a 720 px screen", y)
	}
	b.shot("60-laptop-1280x720")

	b.step("a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(srv.URL+"/#/component/ApprovalWorkflow"),
		chromedp.WaitVisible(chromedp.CSS(`.machine-card[data-machine="Request"] .diagram svg`)))
	if w := num(`document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the page is %.0f px wide on a 390 px phone", w)
	}
	b.shot("61-phone-390")
	b.step("an instance on the phone", chromedp.Navigate(srv.URL+"/#/component/KYC/machine/Case/instance/"+cases[0].ID),
		chromedp.WaitVisible(chromedp.CSS(`#detail-state`)))
	if w := num(`document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the instance page is %.0f px wide on a 390 px phone", w)
	}
	b.shot("62-phone-390-instance")
	b.checkPageErrors()
}
