package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one load run.
type Config struct {
	URL         string         // API base URL
	Component   string         // component name
	Machine     string         // machine of the created instances ("": the entry machine)
	Events      []string       // event types each instance receives, cycled
	Payload     map[string]any // payload of every event (optional)
	Context     map[string]any // context of the created instances (optional)
	Instances   int            // instances created and driven concurrently
	Concurrency int            // workers; each owns instances i with i % Concurrency == worker
	Duration    time.Duration  // stop after Warmup + Duration (0: no time limit)
	Requests    int64          // stop after this many event requests (0: no count limit)
	Warmup      time.Duration  // requests during the first Warmup are not counted
	Timeout     time.Duration  // per request
	Token       string         // bearer token (operator role)
	AllowRemote bool           // allow a non-loopback URL
	JSON        bool           // JSON report
}

var errHelp = errors.New("help")

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	var cfg Config
	var events, payload, ctxJSON string
	fs := flag.NewFlagSet("xcload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:3000", "base URL of the xcomponent API")
	fs.StringVar(&cfg.Component, "component", "", "component name (required)")
	fs.StringVar(&cfg.Machine, "machine", "", "machine of the instances to create (default: the component's entry machine)")
	fs.StringVar(&events, "event", "", "event type to send; a comma-separated list is cycled per instance (required)")
	fs.StringVar(&payload, "payload", "", "JSON object sent as the payload of every event")
	fs.StringVar(&ctxJSON, "context", "", "JSON object: the context of the created instances")
	fs.IntVar(&cfg.Instances, "instances", 16, "instances created, then driven concurrently")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "workers (default and maximum: --instances); each drives its own instances, one request at a time")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long to send events after the warmup (default 10s when --requests is not set)")
	fs.Int64Var(&cfg.Requests, "requests", 0, "how many event requests to send in all")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "initial period, before --duration, whose requests are not counted")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "timeout of one request")
	fs.StringVar(&cfg.Token, "token", "", "bearer token (operator role) when the API has auth on")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a URL that is not a loopback address")
	fs.BoolVar(&cfg.JSON, "json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: xcload --component C --event E [--machine M] [--instances N] [--duration D | --requests N] [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, errHelp
		}
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	for _, e := range strings.Split(events, ",") {
		if e = strings.TrimSpace(e); e != "" {
			cfg.Events = append(cfg.Events, e)
		}
	}
	for _, j := range []struct {
		name, val string
		dst       *map[string]any
	}{{"payload", payload, &cfg.Payload}, {"context", ctxJSON, &cfg.Context}} {
		if j.val == "" {
			continue
		}
		if err := json.Unmarshal([]byte(j.val), j.dst); err != nil {
			return cfg, fmt.Errorf("--%s: want a JSON object: %v", j.name, err)
		}
	}
	if cfg.Duration == 0 && cfg.Requests == 0 {
		cfg.Duration = 10 * time.Second
	}
	return cfg, cfg.check()
}

func (c *Config) check() error {
	switch {
	case c.Component == "":
		return errors.New("--component is required")
	case len(c.Events) == 0:
		return errors.New("--event is required")
	case c.Instances < 1:
		return errors.New("--instances must be at least 1")
	case c.Concurrency < 0:
		return errors.New("--concurrency must be positive")
	case c.Duration < 0 || c.Requests < 0 || c.Warmup < 0 || c.Timeout < 0:
		return errors.New("--duration, --requests, --warmup and --timeout must not be negative")
	case c.Duration == 0 && c.Requests == 0:
		return errors.New("give --duration or --requests: the run must stop by itself")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: want http://host:port", c.URL)
	}
	if !c.AllowRemote && !isLoopback(u.Hostname()) {
		return fmt.Errorf("--url %q is not a loopback address; pass --allow-remote to load another machine", c.URL)
	}
	c.URL = strings.TrimRight(c.URL, "/")
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Report is the outcome of a run.
type Report struct {
	URL         string           `json:"url"`
	Component   string           `json:"component"`
	Machine     string           `json:"machine,omitempty"`
	Events      []string         `json:"events"`
	Instances   int              `json:"instances"`
	Concurrency int              `json:"concurrency"`
	Setup       time.Duration    `json:"-"`
	SetupS      float64          `json:"setupSeconds"` // creating the instances
	Elapsed     time.Duration    `json:"-"`
	ElapsedS    float64          `json:"elapsedSeconds"` // measured period (warmup excluded)
	Requests    int64            `json:"requests"`       // event requests answered or failed in the measured period
	OK          int64            `json:"ok"`             // answered 200
	Failed      int64            `json:"failed"`
	Errors      map[string]int64 `json:"errors"` // "HTTP 409", "transport", …
	EventsPerS  float64          `json:"eventsPerSecond"`
	Latency     Latency          `json:"latencyMs"` // of the 200 answers
	FirstErrors []string         `json:"firstErrors,omitempty"`
}

// Latency percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// WriteJSON prints the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	r.SetupS, r.ElapsedS = r.Setup.Seconds(), r.Elapsed.Seconds()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	machine := r.Machine
	if machine == "" {
		machine = "(entry machine)"
	}
	fmt.Fprintf(&b, "target       %s  component %s  machine %s  events %s\n", r.URL, r.Component, machine, strings.Join(r.Events, ","))
	fmt.Fprintf(&b, "instances    %d  (created in %v)  workers %d\n", r.Instances, r.Setup.Round(time.Millisecond), r.Concurrency)
	fmt.Fprintf(&b, "requests     %d in %v  ok %d  failed %d\n", r.Requests, r.Elapsed.Round(time.Millisecond), r.OK, r.Failed)
	fmt.Fprintf(&b, "throughput   %.0f events/s\n", r.EventsPerS)
	l := r.Latency
	fmt.Fprintf(&b, "latency ms   p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("errors      ")
		for _, k := range keys {
			fmt.Fprintf(&b, " %s: %d", k, r.Errors[k])
		}
		b.WriteString("\n")
		for _, e := range r.FirstErrors {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Run creates the instances, then sends events until the duration or the request count is
// reached (or ctx ends), and reports.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	workers := cfg.Concurrency
	if workers == 0 || workers > cfg.Instances {
		workers = cfg.Instances
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        workers + 8,
		MaxIdleConnsPerHost: workers + 8,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	defer tr.CloseIdleConnections()
	cl := &client{http: &http.Client{Transport: tr, Timeout: cfg.Timeout}, cfg: &cfg}
	rep := &Report{URL: cfg.URL, Component: cfg.Component, Machine: cfg.Machine, Events: cfg.Events,
		Instances: cfg.Instances, Concurrency: workers, Errors: map[string]int64{}}

	start := time.Now()
	ids, err := cl.createAll(ctx, cfg.Instances, min(workers, 32))
	if err != nil {
		return nil, err
	}
	rep.Setup = time.Since(start)

	bodies := make([][]byte, len(cfg.Events))
	for i, e := range cfg.Events {
		ev := map[string]any{"type": e}
		if cfg.Payload != nil {
			ev["payload"] = cfg.Payload
		}
		if bodies[i], err = json.Marshal(ev); err != nil {
			return nil, err
		}
	}

	var deadline time.Time // zero: no time limit
	var (
		budget   atomic.Int64 // requests left when --requests is set
		measured atomic.Bool  // warmup over
		mstart   atomic.Int64 // unix ns of the start of the measured period
		wg       sync.WaitGroup
		results  = make([]workerResult, workers)
	)
	budget.Store(cfg.Requests)
	begin := time.Now()
	if cfg.Duration > 0 {
		deadline = begin.Add(cfg.Warmup + cfg.Duration)
	}
	if cfg.Warmup == 0 {
		measured.Store(true)
		mstart.Store(begin.UnixNano())
	} else {
		t := time.AfterFunc(cfg.Warmup, func() {
			mstart.Store(time.Now().UnixNano())
			measured.Store(true)
		})
		defer t.Stop()
	}
	for w := range workers {
		var mine []string
		for i := w; i < len(ids); i += workers {
			mine = append(mine, ids[i])
		}
		wg.Go(func() {
			res := &results[w]
			res.errors = map[string]int64{}
			n := make([]int, len(mine)) // events sent to each instance, to cycle the types
			for k := 0; ; k = (k + 1) % len(mine) {
				// Stop sending at the deadline; a request in flight then is finished and counted.
				if ctx.Err() != nil || (!deadline.IsZero() && time.Now().After(deadline)) {
					return
				}
				if cfg.Requests > 0 && budget.Add(-1) < 0 {
					return
				}
				body := bodies[n[k]%len(bodies)]
				n[k]++
				t0 := time.Now()
				status, msg, err := cl.send(ctx, mine[k], body)
				lat := time.Since(t0)
				if err != nil && ctx.Err() != nil {
					return // interrupted: this request is not counted
				}
				if !measured.Load() {
					continue
				}
				res.requests++
				switch {
				case err != nil:
					res.fail("transport", fmt.Sprintf("%s: %v", mine[k], err))
				case status != http.StatusOK:
					res.fail(fmt.Sprintf("HTTP %d", status), fmt.Sprintf("%s: HTTP %d %s", mine[k], status, msg))
				default:
					res.lat = append(res.lat, lat)
				}
			}
		})
	}
	wg.Wait()
	end := time.Now()
	if ms := mstart.Load(); ms > 0 {
		rep.Elapsed = end.Sub(time.Unix(0, ms))
	}
	var lats []time.Duration
	for i := range results {
		r := &results[i]
		rep.Requests += r.requests
		rep.OK += int64(len(r.lat))
		for k, v := range r.errors {
			rep.Errors[k] += v
			rep.Failed += v
		}
		for _, e := range r.first {
			if len(rep.FirstErrors) < 5 {
				rep.FirstErrors = append(rep.FirstErrors, e)
			}
		}
		lats = append(lats, r.lat...)
	}
	if rep.Elapsed > 0 {
		rep.EventsPerS = float64(rep.OK) / rep.Elapsed.Seconds()
	}
	rep.Latency = percentiles(lats)
	if err := ctx.Err(); err != nil && rep.Requests == 0 {
		return nil, err
	}
	return rep, nil
}

type workerResult struct {
	requests int64
	lat      []time.Duration
	errors   map[string]int64
	first    []string
}

func (r *workerResult) fail(kind, detail string) {
	r.errors[kind]++
	if len(r.first) < 5 {
		r.first = append(r.first, detail)
	}
}

func percentiles(lats []time.Duration) Latency {
	if len(lats) == 0 {
		return Latency{}
	}
	slices.Sort(lats)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(lats)))) - 1 // nearest rank
		return ms(lats[max(0, min(len(lats)-1, i))])
	}
	var sum time.Duration
	for _, l := range lats {
		sum += l
	}
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(lats[len(lats)-1]), Mean: ms(sum / time.Duration(len(lats)))}
}

// client sends the API requests.
type client struct {
	http *http.Client
	cfg  *Config
}

func (c *client) request(ctx context.Context, path string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	return req, nil
}

// send posts one event; msg is the body of a non-200 answer (truncated).
func (c *client) send(ctx context.Context, id string, body []byte) (status int, msg string, err error) {
	req, err := c.request(ctx, "/api/components/"+url.PathEscape(c.cfg.Component)+"/instances/"+url.PathEscape(id)+"/events", body)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode, strings.TrimSpace(string(b)), nil
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, "", err
}

// createAll creates n instances with up to par requests at a time.
func (c *client) createAll(ctx context.Context, n, par int) ([]string, error) {
	body := map[string]any{"context": c.cfg.Context}
	if c.cfg.Machine != "" {
		body["machineName"] = c.cfg.Machine
	}
	if c.cfg.Context == nil {
		body["context"] = map[string]any{}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	ids := make([]string, n)
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Value
	)
	for range max(1, min(par, runtime.GOMAXPROCS(0)*16)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				id, err := c.create(ctx, b)
				if err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		return nil, err
	}
	return ids, nil
}

func (c *client) create(ctx context.Context, body []byte) (string, error) {
	req, err := c.request(ctx, "/api/components/"+url.PathEscape(c.cfg.Component)+"/instances", body)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("create instance: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("create instance: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create instance: HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	var out struct {
		InstanceID string `json:"instanceId"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.InstanceID == "" {
		return "", fmt.Errorf("create instance: unexpected answer %s", raw)
	}
	return out.InstanceID, nil
}
