package httpapi

import (
	"fmt"
	"strings"
	"testing"
)

// TestMetricsLabelsBounded: client-chosen methods and paths never become metric labels
// (issue 9, hole 1): 200 invented methods and paths leave /metrics with the known methods,
// OTHER and route patterns only.
func TestMetricsLabelsBounded(t *testing.T) {
	e := approvalEnv(t, Options{})
	for i := range 200 {
		e.do(req{method: fmt.Sprintf("X%06d", i), path: fmt.Sprintf("/nope/%d", i)})
		e.get(fmt.Sprintf("/api/components/Unknown%d", i))
	}
	text := string(e.must(e.get("/metrics"), 200).raw)
	if strings.Contains(text, "X000") || strings.Contains(text, "/nope/") || strings.Contains(text, "Unknown1") {
		t.Fatalf("client-chosen values in metric labels")
	}
	if !strings.Contains(text, `method="OTHER"`) {
		t.Errorf("invented methods not counted as OTHER")
	}
	if n := strings.Count(text, "http_requests_total{"); n > 10 {
		t.Errorf("%d http_requests_total series, want a handful", n)
	}
}
