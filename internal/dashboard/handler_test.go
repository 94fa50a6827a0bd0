package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/xcomponent/xcomponent/internal/dashboard"
	"github.com/xcomponent/xcomponent/internal/httpapi"
)

func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestHandler(t *testing.T) {
	h := dashboard.Handler()
	res, body := get(t, h, "GET", "/")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `src="/assets/app.js"`) {
		t.Fatalf("GET /: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
	for path, ctype := range map[string]string{
		"/assets/app.js":                 "text/javascript",
		"/assets/style.css":              "text/css",
		"/assets/vendor/mermaid.min.js":  "text/javascript",
		"/assets/vendor/mermaid.LICENSE": "",
	} {
		res, body := get(t, h, "GET", path)
		if res.StatusCode != 200 || len(body) == 0 || !strings.HasPrefix(res.Header.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %q (%d bytes)", path, res.StatusCode, res.Header.Get("Content-Type"), len(body))
		}
	}
	for _, path := range []string{"/assets/", "/assets/nothing.js", "/index.html", "/assets/../dashboard.go"} {
		if res, _ := get(t, h, "GET", path); res.StatusCode == 200 {
			t.Errorf("GET %s: 200", path)
		}
	}
	if res, _ := get(t, h, "POST", "/"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", res.StatusCode)
	}
	// No data is inserted with innerHTML / outerHTML / insertAdjacentHTML / document.write.
	_, app := get(t, h, "GET", "/assets/app.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"} {
		if strings.Contains(app, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

// TestServedByTheAPI: the API's handler serves the dashboard without a token, and still
// answers JSON for unknown paths and 401 for the API.
func TestServedByTheAPI(t *testing.T) {
	tokens, err := httpapi.ParseTokens("operator=t1")
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, httpapi.Options{Tokens: tokens}, "approval.yaml")
	for path, want := range map[string]int{"/": 200, "/assets/app.js": 200, "/api/components": 401, "/nothing": 404, "/assets/nothing": 404} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, res.StatusCode, want)
		}
		if path == "/nothing" && !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Errorf("GET /nothing: %s", res.Header.Get("Content-Type"))
		}
	}
}
