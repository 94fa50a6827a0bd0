package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/internal/node"
)

// serve runs a real node (memory store, testdata/toggle.yaml) in this process and returns its base URL.
func serve(t *testing.T) string {
	t.Helper()
	file := filepath.Join("testdata", "toggle.yaml")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- node.Serve(ctx, node.Config{Files: []string{file}, Store: "memory", Bind: "127.0.0.1", Port: 0,
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
