package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
)

// TestScale100k times the dashboard's reads over 100,000 instances (manual: set
// XCOMPONENT_SCALE_100K=1).
func TestScale100k(t *testing.T) {
	if os.Getenv("XCOMPONENT_SCALE_100K") == "" {
		t.Skip("manual")
	}
	eng := xc.New(xc.Options{Store: store.NewMemory()})
	c := loadFixture(t, "approval.yaml")
	ctx := context.Background()
	if err := eng.Load(ctx, c); err != nil {
		t.Fatal(err)
	}
	for i := range 100000 {
		if _, err := eng.Create(ctx, xc.CreateRequest{Component: "ApprovalWorkflow", Machine: "ExpenseRequest", Data: expense(fmt.Sprintf("EXP-%d", i), 10)}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(New(NewLocal(eng), Options{}))
	defer srv.Close()
	for _, p := range []string{"/api/counts", "/api/instances?component=ApprovalWorkflow&status=active&limit=100", "/api/instances?component=ApprovalWorkflow&where=requestId:EXP-7", "/api/instances?component=ApprovalWorkflow&q=EXP-99999"} {
		var best time.Duration
		for range 5 {
			start := time.Now()
			res, err := http.Get(srv.URL + p)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if d := time.Since(start); best == 0 || d < best {
				best = d
			}
		}
		t.Logf("%s: best of 5 %v", p, best)
	}
}
