// Package dashboard is the web dashboard served by `xcomponent serve` and `xcomponent
// dashboard`: static files (vanilla ES modules, CSS and a vendored mermaid) embedded in the
// binary, so it works offline. The page talks to the REST API under /api and to the SSE
// stream at /api/stream; when the API answers 401 it asks for a token, keeps it in
// sessionStorage and sends it as "Authorization: Bearer" (and as ?token= on the stream).
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var files embed.FS

// static is the root of the served files: index.html and assets/.
var static = func() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err)
	}
	return sub
}()

// csp keeps the page to its own origin: no inline scripts, no third-party hosts. Inline
// styles are allowed because mermaid's SVGs carry them.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; font-src 'self' data:; object-src 'none'; " +
	"base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// IsPath reports whether the dashboard serves path: "/" and everything under /assets/.
func IsPath(path string) bool { return path == "/" || strings.HasPrefix(path, "/assets/") }

// Handler serves GET/HEAD / (index.html) and /assets/...; anything else is 404 (405 for
// other methods). The files need no token: the data comes from the API, which checks it.
func Handler() http.Handler {
	assets := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		switch {
		case r.URL.Path == "/":
			h.Set("Content-Security-Policy", csp)
			h.Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, static, "index.html")
		case strings.HasPrefix(r.URL.Path, "/assets/") && !strings.HasSuffix(r.URL.Path, "/"):
			h.Set("Cache-Control", "no-cache")
			assets.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
