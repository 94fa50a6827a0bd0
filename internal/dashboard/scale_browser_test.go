package dashboard_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/httpapi"
)

// TestDashboardAtScale is issue 12's operator walk-through with 2,005 instances and 50 events/s:
// the counts are exact (defect 1: they came from a list truncated at 1,000), the list says how
// many it shows and pages ("100 of 2,005", load more) while the search reaches every
// instance, by text or business key, with the filters in the URL (defect 2), and under steady
// traffic the counters move while events arrive and end exact (defect 3: a debounce that
// traffic postponed froze them).
func TestDashboardAtScale(t *testing.T) {
	srv, eng := startEngineServer(t, httpapi.Options{}, "approval.yaml")
	ctx := context.Background()
	const n = 2005
	ids := make([]string, n)
	for i := range n {
		in, err := eng.Create(ctx, xc.CreateRequest{Component: "ApprovalWorkflow", Machine: "Request",
			Data: map[string]any{"employee": fmt.Sprintf("emp-%d", i), "amount": 10}})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = in.ID
	}
	b := newBrowser(t)
	chip := func(state string) string {
		return fmt.Sprintf(`(document.querySelector('.machine-card[data-machine="Request"] .count[data-state=%q] b')?.textContent || '')`, state)
	}
	b.step("open the component", chromedp.Navigate(srv.URL+"/#/component/ApprovalWorkflow"),
		chromedp.WaitVisible(chromedp.CSS(`#conn-status.ok`)))

	// 1. exact counts
	b.until("the exact count of Draft", chip("Draft")+` === '2,005'`)
	b.until("the active instances in the header", `document.querySelector('#stat-active').textContent === '2,005'`)
	b.until("the count on the Active filter", `document.querySelector('#status-filter [data-status="active"] .n').textContent === '2,005'`)

	// 2. paging and search
	b.until("the list says how much it shows", `document.querySelector('#list-count')?.textContent === '100 of 2,005'`)
	b.step("load more", chromedp.Click(chromedp.CSS(`#list-more-btn`)))
	b.until("the next page", `document.querySelector('#list-count')?.textContent === '200 of 2,005'
		&& document.querySelectorAll('#instance-list .inst').length === 200`)
	b.shot("20-scale-list")
	search := func(q string) {
		t.Helper()
		b.eval(fmt.Sprintf(`(() => { const i = document.querySelector('#filter-q');
			i.value = %q; i.dispatchEvent(new Event('input')); return '' })()`, q))
	}
	oldest := fmt.Sprintf(`document.querySelectorAll('#instance-list .inst').length === 1 && !!document.querySelector('#instance-list .inst[data-id=%q]')`, ids[0])
	search("employee:emp-0")
	b.until("the oldest instance found by business key", oldest)
	if h := b.eval(`location.hash`); h != "#/component/ApprovalWorkflow/machine/Request?q=employee%3Aemp-0" {
		t.Errorf("filters not in the URL: %s", h)
	}
	b.step("reload with the filter", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#conn-status.ok`)))
	b.until("the filter survives the reload", oldest+` && document.querySelector('#filter-q').value === 'employee:emp-0'`)
	search(`"emp-0"`)
	b.until("the oldest instance found by text", oldest)
	search("")
	b.until("the whole list again", `document.querySelector('#list-count')?.textContent === '100 of 2,005'`)

	// 3. live under 50 events/s: SUBMIT moves Draft → Submitted → (auto ROUTE) ManagerReview
	b.eval(`(() => { window.__samples = []; window.__sampler = setInterval(() => window.__samples.push(` + chip("Draft") + `), 100); return '' })()`)
	const sent = 300
	half, done := make(chan struct{}), make(chan error, 1)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := range sent {
			<-tick.C
			if _, err := eng.Send(ctx, ids[i], xc.Event{Type: "SUBMIT"}); err != nil {
				done <- fmt.Errorf("SUBMIT %d: %w", i, err)
				return
			}
			if i == sent/2 {
				close(half)
			}
		}
		done <- nil
	}()
	select {
	case <-half:
	case err := <-done:
		t.Fatal(err)
	}
	// 3 s of traffic: the chip must have moved several times already
	if got, _ := strconv.Atoi(b.eval(`String(new Set(window.__samples).size)`)); got < 3 {
		t.Errorf("Draft count took %d distinct values during 3 s at 50 events/s: frozen (%s)", got, b.eval(`JSON.stringify([...new Set(window.__samples)])`))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b.until("exact counts after the traffic", chip("Draft")+` === '1,705' && `+chip("ManagerReview")+` === '300' && `+chip("Submitted")+` === '0'`)
	b.until("the header still exact", `document.querySelector('#stat-active').textContent === '2,005'`)
	b.shot("21-scale-after-traffic")
	b.checkPageErrors()
}
