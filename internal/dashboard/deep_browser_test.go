package dashboard_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/internal/httpapi"
	"github.com/xcomponent/xcomponent/store"
)

// TestDashboardDeepData: an instance whose context is nested 20,000 levels deep (the API
// refuses such bodies, but a runtime or an older store may hold one) is shown cut with "…",
// without a RangeError in the page (issue 9, hole 10).
func TestDashboardDeepData(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := xc.New(xc.Options{Store: store.NewMemory(), Logger: quiet})
	c, err := component.LoadFile(filepath.Join("..", "..", "examples", "approval.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := eng.Load(ctx, c); err != nil {
		t.Fatal(err)
	}
	var deep any = "bottom"
	for range 20000 {
		deep = map[string]any{"d": deep}
	}
	in, err := eng.Create(ctx, xc.CreateRequest{Component: "ApprovalWorkflow", Machine: "Request",
		Data: map[string]any{"employee": "joe", "amount": 10, "deep": deep}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.NewLocal(eng), httpapi.Options{Logger: quiet}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Close(cctx)
	})
	b := newBrowser(t)
	b.step("open the deep instance",
		chromedp.Navigate(srv.URL+"/#/component/ApprovalWorkflow/machine/Request/instance/"+in.ID),
		chromedp.WaitVisible(chromedp.CSS(`#detail-state[data-state="Draft"]`)),
	)
	b.until("the context shown, cut", `(document.querySelector('#detail-context')?.textContent || '').includes('…')`)
	if got := b.eval(`document.querySelector('#detail-context').textContent`); !strings.Contains(got, `"employee": "joe"`) {
		t.Errorf("context shown = %.200q", got)
	}
	b.checkPageErrors()
}
