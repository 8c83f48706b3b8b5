package dashboard

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSource counts the snapshots asked of it.
type fakeSource struct {
	calls atomic.Int64
	s     Status
}

func (f *fakeSource) DashboardStatus() Status {
	f.calls.Add(1)
	return f.s
}

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func TestHandlerServesThePage(t *testing.T) {
	h := Handler(&fakeSource{})
	for path, ctype := range map[string]string{"/": "text/html", "/dashboard.js": "text/javascript", "/dashboard.css": "text/css"} {
		w := get(t, h, http.MethodGet, path)
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) || w.Body.Len() == 0 {
			t.Fatalf("GET %s: %d %q, %d bytes", path, w.Code, w.Header().Get("Content-Type"), w.Body.Len())
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Fatalf("GET %s: content security policy %q", path, csp)
		}
	}
	page := get(t, h, http.MethodGet, "/").Body.String()
	for _, ref := range []string{`src="dashboard.js"`, `href="dashboard.css"`, `id="loss-chart"`, `id="members"`} {
		if !strings.Contains(page, ref) {
			t.Errorf("the page lacks %s", ref)
		}
	}
	if w := get(t, h, http.MethodGet, "/index.html"); w.Code != http.StatusNotFound {
		t.Errorf("GET /index.html: %d, want 404", w.Code)
	}
	if w := get(t, h, http.MethodPost, "/"); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

// The page loads nothing from elsewhere: no URL in the embedded files
// but the SVG namespace (an identifier, never fetched).
func TestNoExternalAssets(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(`)
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range url.FindAllString(string(b), -1) {
			if m != "http://www.w3.org" {
				t.Errorf("%s refers to %q", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStatusEndpoint(t *testing.T) {
	u := newRun(200)
	u.steps(1, 30)
	src := &fakeSource{s: u.status()}
	w := get(t, Handler(src), http.MethodGet, StatusPath)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("GET %s: %d %v", StatusPath, w.Code, w.Header())
	}
	var s Status
	if err := json.NewDecoder(w.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.Version != FormatVersion || s.Step != 30 || len(s.Series.Train) != 30 || len(s.Members) != 2 {
		t.Fatalf("decoded: version %d step %d, %d train points, %d members", s.Version, s.Step, len(s.Series.Train), len(s.Members))
	}
}

// However many requests come, the source is asked at most once per
// minInterval.
func TestStatusIsTakenAtMostFourTimesASecond(t *testing.T) {
	src := &fakeSource{s: NewRecorder().Status(Live{Now: t0})}
	h := Handler(src).(*handler)
	var mu sync.Mutex
	now := t0
	h.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				if w := get(t, h, http.MethodGet, StatusPath); w.Code != http.StatusOK {
					t.Errorf("status %d", w.Code)
				}
			}
		}()
	}
	wg.Wait()
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("200 requests at one instant took %d snapshots, want 1", n)
	}
	mu.Lock()
	now = now.Add(minInterval)
	mu.Unlock()
	get(t, h, http.MethodGet, StatusPath)
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("a request %v later took %d snapshots in all, want 2", minInterval, n)
	}
}

func TestHeadOfStatus(t *testing.T) {
	srv := httptest.NewServer(Handler(&fakeSource{}))
	defer srv.Close()
	resp, err := http.Head(srv.URL + StatusPath)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(b) != 0 {
		t.Fatalf("HEAD: %d with %d bytes", resp.StatusCode, len(b))
	}
}
