package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xcserve "github.com/xcomponent/xcomponent/internal/serve"
)

// serve runs a real `xcomponent serve` (memory store, testdata/toggle.yaml) in this process and returns its base URL.
func serve(t *testing.T) string {
	t.Helper()
	file := filepath.Join("testdata", "toggle.yaml")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- xcserve.Serve(ctx, xcserve.Config{Files: []string{file}, Store: "memory", Bind: "127.0.0.1", Port: 0,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:  func(a net.Addr) { ready <- "http://" + a.String() }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case u := <-ready:
		return u
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve: not ready after 30s")
	}
	return ""
}

func runLoad(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// versions returns the sum of the versions of the component's instances and their count.
func versions(t *testing.T, base string) (sum int64, n int) {
	t.Helper()
	resp, err := http.Get(base + "/api/components/Bench/instances?limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Instances []struct {
			Version int64 `json:"version"`
		} `json:"instances"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	for _, in := range out.Instances {
		sum += in.Version
	}
	return sum, len(out.Instances)
}

func TestRequestsBounded(t *testing.T) {
	base := serve(t)
	code, out, errOut := runLoad(t, "--url", base, "--component", "Bench", "--machine", "Toggle", "--event", "FLIP",
		"--instances", "8", "--concurrency", "4", "--requests", "400", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.Requests != 400 || rep.OK != 400 || rep.Failed != 0 || rep.Concurrency != 4 || rep.Instances != 8 {
		t.Fatalf("report: %+v", rep)
	}
	l := rep.Latency
	if rep.EventsPerS <= 0 || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
		t.Fatalf("figures: %+v", rep)
	}
	// Every acknowledged event is one transition of one of the created instances.
	if sum, n := versions(t, base); sum != 400 || n != 8 {
		t.Fatalf("server: %d instances, versions sum %d; want 8 and 400", n, sum)
	}
}

func TestDurationBoundedAndEventCycle(t *testing.T) {
	base := serve(t)
	start := time.Now()
	// FLIP, KEEP, FLIP cycled on each instance: Off→On, On→On, On→Off, again: never refused.
	code, out, errOut := runLoad(t, "--url", base, "--component", "Bench", "--event", "FLIP,KEEP,FLIP",
		"--instances", "3", "--duration", "300ms", "--warmup", "50ms")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("a 300ms run took %v", took)
	}
	for _, want := range []string{"throughput", "events/s", "p50", "p99", "ok "} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "errors") {
		t.Errorf("unexpected errors:\n%s", out)
	}
}

func TestErrorsAreCounted(t *testing.T) {
	base := serve(t)
	// KEEP from Off is refused (409): every request fails and the exit status says so.
	code, out, _ := runLoad(t, "--url", base, "--component", "Bench", "--event", "KEEP",
		"--instances", "2", "--requests", "10", "--json")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Failed != 10 || rep.Errors["HTTP 409"] != 10 || rep.OK != 0 || len(rep.FirstErrors) == 0 {
		t.Fatalf("report: %+v", rep)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--event", "FLIP"},      // no component
		{"--component", "Bench"}, // no event
		{"--component", "Bench", "--event", "E", "--url", "http://192.0.2.1:3000"}, // not loopback
		{"--component", "Bench", "--event", "E", "--instances", "0"},
		{"--component", "Bench", "--event", "E", "--duration", "-1s"},
		{"--component", "Bench", "--event", "E", "--payload", "[1]"},
		{"--component", "Bench", "--event", "E", "--rate", "-5"},
	} {
		if code, _, errOut := runLoad(t, args...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d (%q), want 2", args, code, errOut)
		}
	}
	// Creating against an unknown component fails before any event is sent.
	base := serve(t)
	if code, _, errOut := runLoad(t, "--url", base, "--component", "Nope", "--event", "E", "--requests", "1"); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("unknown component: exit %d: %s", code, errOut)
	}
}

func TestPercentiles(t *testing.T) {
	var lats []time.Duration
	for i := 100; i >= 1; i-- { // 1..100 ms, unsorted
		lats = append(lats, time.Duration(i)*time.Millisecond)
	}
	l := percentiles(lats)
	if l.P50 != 50 || l.P90 != 90 || l.P99 != 99 || l.Max != 100 || l.Mean != 50.5 {
		t.Fatalf("%+v", l)
	}
	if l := percentiles(nil); l != (Latency{}) {
		t.Fatalf("empty: %+v", l)
	}
}

// front serves base through a reverse proxy whose answers pass through change (may be nil) and
// whose event requests are held for delay first: a server that behaves differently or slower.
func front(t *testing.T, base string, delay time.Duration, change func(*http.Response) error) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = change
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 && strings.HasSuffix(r.URL.Path, "/events") {
			time.Sleep(delay) // the slow server under test, not a synchronisation
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func decode(t *testing.T, out string) Report {
	t.Helper()
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return rep
}

// dominated checks that the latencies from the schedule are not below those from the send:
// each request's is at least its send latency, so each percentile is too.
func dominated(t *testing.T, send, sched Latency) {
	t.Helper()
	if sched.P50 < send.P50 || sched.P90 < send.P90 || sched.P99 < send.P99 || sched.Max < send.Max || send.P50 <= 0 {
		t.Fatalf("from send %+v, from schedule %+v", send, sched)
	}
}

func TestRateSchedulesRequests(t *testing.T) {
	base := serve(t)
	code, out, errOut := runLoad(t, "--url", base, "--component", "Bench", "--event", "FLIP",
		"--instances", "4", "--rate", "200", "--duration", "1s", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	rep := decode(t, out)
	r := rep.Rate
	if r == nil || r.Target != 200 {
		t.Fatalf("no rate report: %s", out)
	}
	// 200/s for 1 s schedules exactly 200 requests; on a loaded machine many may be left unsent
	// at the deadline, but never more are sent, and the achieved rate cannot exceed the target.
	if rep.Requests+r.Unsent != 200 || rep.Requests < 1 || rep.OK != rep.Requests || rep.Failed != 0 {
		t.Fatalf("requests %d, unsent %d, ok %d: %s", rep.Requests, r.Unsent, rep.OK, out)
	}
	if r.Achieved <= 0 || r.Achieved > 200.001 || r.Late < 0 || r.Late > rep.Requests {
		t.Fatalf("rate figures: %+v", r)
	}
	dominated(t, rep.Latency, r.FromSchedule)
	if sum, n := versions(t, base); sum != rep.OK || n != 4 {
		t.Fatalf("server: %d instances, versions sum %d; want 4 and %d", n, sum, rep.OK)
	}
}

func TestRateBusyInstancesAreLate(t *testing.T) {
	// One instance answered in ≥ 20 ms cannot take a request every 5 ms: after the first, each
	// request waits for the previous answer, is late, and its wait counts from the schedule.
	base := front(t, serve(t), 20*time.Millisecond, nil)
	code, out, errOut := runLoad(t, "--url", base, "--component", "Bench", "--event", "FLIP",
		"--instances", "1", "--rate", "200", "--requests", "20", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	rep := decode(t, out)
	r := rep.Rate
	if r == nil || rep.Requests != 20 || rep.OK != 20 || r.Unsent != 0 {
		t.Fatalf("report: %s", out)
	}
	if r.Late < 15 || r.Achieved >= 100 {
		t.Fatalf("late %d, achieved %.1f/s: want ≥ 15 late and under 100/s (at most 50/s possible)", r.Late, r.Achieved)
	}
	dominated(t, rep.Latency, r.FromSchedule)
	if r.FromSchedule.Max <= rep.Latency.Max {
		t.Fatalf("waiting for the instance not counted: from schedule %+v, from send %+v", r.FromSchedule, rep.Latency)
	}
}

func TestCreateAnswered200(t *testing.T) {
	// xcomponent-ai's server answers a create with 200; this one names the id "id".
	base := serve(t)
	fb := front(t, base, 0, func(resp *http.Response) error {
		if resp.Request.Method != http.MethodPost || !strings.HasSuffix(resp.Request.URL.Path, "/instances") {
			return nil
		}
		var in struct {
			InstanceID string `json:"instanceId"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
			return err
		}
		resp.Body.Close()
		b, _ := json.Marshal(map[string]string{"id": in.InstanceID})
		resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		resp.Header.Set("Content-Length", fmt.Sprint(len(b)))
		return nil
	})
	code, out, errOut := runLoad(t, "--url", fb, "--component", "Bench", "--event", "FLIP",
		"--instances", "2", "--requests", "20", "--rate", "1000")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	for _, want := range []string{"ok 20 ", "target 1000/s", "achieved", "late", "from schedule", "from send"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	if sum, n := versions(t, base); sum != 20 || n != 2 {
		t.Fatalf("server: %d instances, versions sum %d; want 2 and 20", n, sum)
	}
	// An answer with neither instanceId nor id is refused with what came back.
	bad := front(t, base, 0, func(resp *http.Response) error {
		if resp.Request.Method == http.MethodPost && strings.HasSuffix(resp.Request.URL.Path, "/instances") {
			resp.Body.Close()
			resp.StatusCode, resp.Body, resp.ContentLength = http.StatusOK, io.NopCloser(strings.NewReader(`{}`)), 2
			resp.Header.Set("Content-Length", "2")
		}
		return nil
	})
	if code, _, errOut := runLoad(t, "--url", bad, "--component", "Bench", "--event", "FLIP", "--requests", "1"); code != 1 || !strings.Contains(errOut, "no instanceId or id") {
		t.Fatalf("answer without id: exit %d: %s", code, errOut)
	}
}
