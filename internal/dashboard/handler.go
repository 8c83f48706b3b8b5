package dashboard

import (
	"embed"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// static holds the page: HTML, style and a hand-written script that draws
// the curves as SVG. Nothing is fetched from elsewhere.
//
//go:embed static
var static embed.FS

// asset is one embedded file served at a path.
type asset struct{ file, contentType string }

var assets = map[string]asset{
	"/":              {"static/index.html", "text/html; charset=utf-8"},
	"/dashboard.js":  {"static/dashboard.js", "text/javascript; charset=utf-8"},
	"/dashboard.css": {"static/dashboard.css", "text/css; charset=utf-8"},
}

// StatusPath is where the handler serves the Status as JSON.
const StatusPath = "/api/status"

// contentSecurity lets the page load only its own files: a page that
// tried to reach another host would fail in the browser.
const contentSecurity = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Source supplies the dashboard's status.
type Source interface {
	// DashboardStatus is the run's status now. The handler asks at most
	// once every minInterval, however many requests come.
	DashboardStatus() Status
}

// minInterval is how long an encoded status is reused, so that a flood
// of requests (the endpoint needs no key) costs the coordinator at most
// four snapshots a second.
const minInterval = 250 * time.Millisecond

// Handler serves the dashboard: the page at /, its script and style, and
// the Status as JSON at StatusPath (GET and HEAD only). Mount it at "/" of
// a mux beside other handlers: paths it does not know are 404.
func Handler(src Source) http.Handler { return &handler{src: src, now: time.Now} }

type handler struct {
	src Source
	now func() time.Time

	mu   sync.Mutex
	body []byte // the newest encoded status
	at   time.Time
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", contentSecurity)
	if r.URL.Path == StatusPath {
		body, err := h.status()
		if err != nil {
			http.Error(w, "dashboard: "+err.Error(), http.StatusInternalServerError)
			return
		}
		hdr.Set("Content-Type", "application/json")
		w.Write(body) //nolint:errcheck // the client went away
		return
	}
	a, ok := assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	b, err := static.ReadFile(a.file)
	if err != nil { // a file embedded at build time: cannot happen
		http.Error(w, "dashboard: "+err.Error(), http.StatusInternalServerError)
		return
	}
	hdr.Set("Content-Type", a.contentType)
	w.Write(b) //nolint:errcheck // the client went away
}

// status is the encoded Status, taken anew when the last one is older
// than minInterval.
func (h *handler) status() ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if h.body != nil && now.Sub(h.at) < minInterval && !now.Before(h.at) {
		return h.body, nil
	}
	b, err := json.Marshal(h.src.DashboardStatus())
	if err != nil {
		return nil, err
	}
	h.body, h.at = b, now
	return b, nil
}
