package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
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
	ContextSize int            // pad the context with a "pad" string to about this many bytes of JSON (0: no padding)
	Instances   int            // instances created and driven concurrently
	Concurrency int            // workers; each owns instances i with i % Concurrency == worker
	Duration    time.Duration  // stop after Warmup + Duration (0: no time limit)
	Requests    int64          // stop after this many event requests (0: no count limit)
	Rate        float64        // events/s in all, scheduled open-loop (0: flat out)
	Warmup      time.Duration  // requests during the first Warmup are not counted
	Timeout     time.Duration  // per request
	Token       string         // bearer token (operator role)
	AllowRemote bool           // allow a non-loopback URL
	JSON        bool           // JSON report
	JSONOut     string         // also write the JSON report to this file
	// Endpoint is where events go: "events" (POST /api/components/:c/instances/:id/events
	// {"type"}), "instance-events" (POST /api/instances/:id/events {"type"}) or "trigger"
	// (POST /api/instances/:id/trigger {"event"}).
	Endpoint string
	// Client is the HTTP client of the event requests: "fast" (default; a minimal HTTP/1.1
	// client per worker, for http:// URLs) or "std" (net/http's).
	Client     string
	ServerPIDs []int         // local server processes to watch (none: the one listening on URL's port, if any)
	NoWatch    bool          // watch no process
	Sample     time.Duration // sample the watched processes this often and report flatness (0: only RSS and CPU, every second)
	SampleOut  io.Writer     // the samples as JSON lines, as they are taken (optional)
	Progress   io.Writer     // a progress line every second (optional)
	Proc       procFS        // root of /proc ("": /proc)
}

// endpoints maps --endpoint to the event request's path (after the base URL) and the name of
// the event type's field in its body.
var endpoints = map[string]struct {
	path  func(component, id string) string
	field string
}{
	"events": {func(c, id string) string {
		return "/api/components/" + url.PathEscape(c) + "/instances/" + url.PathEscape(id) + "/events"
	}, "type"},
	"instance-events": {func(_, id string) string { return "/api/instances/" + url.PathEscape(id) + "/events" }, "type"},
	"trigger":         {func(_, id string) string { return "/api/instances/" + url.PathEscape(id) + "/trigger" }, "event"},
}

// pidList is a repeatable flag of process ids, each a number or a comma-separated list.
type pidList []int

func (p *pidList) String() string { return fmt.Sprint([]int(*p)) }
func (p *pidList) Set(v string) error {
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("want a process id, got %q", f)
		}
		*p = append(*p, n)
	}
	return nil
}

var errHelp = errors.New("help")

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	var cfg Config
	var events, payload, ctxJSON, sampleOut, progressMode string
	fs := flag.NewFlagSet("xcload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:3000", "base URL of the xcomponent API")
	fs.StringVar(&cfg.Component, "component", "", "component name (required)")
	fs.StringVar(&cfg.Machine, "machine", "", "machine of the instances to create (default: the component's entry machine)")
	fs.StringVar(&events, "event", "", "event type to send; a comma-separated list is cycled per instance (required)")
	fs.StringVar(&payload, "payload", "", "JSON object sent as the payload of every event")
	fs.StringVar(&ctxJSON, "context", "", "JSON object: the context of the created instances")
	fs.IntVar(&cfg.ContextSize, "context-size", 0, "pad each created instance's context with a \"pad\" string field to about this many bytes of JSON (e.g. 100, 10000, 100000)")
	fs.IntVar(&cfg.Instances, "instances", 16, "instances created, then driven concurrently")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "workers (default and maximum: --instances); each drives its own instances, one request at a time")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long to send events after the warmup (default 10s when --requests is not set)")
	fs.Int64Var(&cfg.Requests, "requests", 0, "how many event requests to send in all")
	fs.Float64Var(&cfg.Rate, "rate", 0, "target events/s in all, sent on a fixed schedule whatever the answers (0: flat out, each worker sends when answered)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "initial period, before --duration, whose requests are not counted")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "timeout of one request")
	fs.StringVar(&cfg.Token, "token", "", "bearer token (operator role) when the API has auth on")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a URL that is not a loopback address")
	fs.BoolVar(&cfg.JSON, "json", false, "print the report as JSON")
	fs.StringVar(&cfg.JSONOut, "json-out", "", "also write the JSON report to this file (the text report still goes to stdout)")
	fs.StringVar(&cfg.Client, "client", "fast", "HTTP client of the event requests: fast (a minimal HTTP/1.1 client per worker, for http:// URLs: the load generator's own CPU stays small) or std (net/http's client)")
	fs.StringVar(&cfg.Endpoint, "endpoint", "events", "where events are sent: events (POST /api/components/C/instances/ID/events {type}), instance-events (POST /api/instances/ID/events {type}) or trigger (POST /api/instances/ID/trigger {event})")
	fs.Var((*pidList)(&cfg.ServerPIDs), "server-pid", "a local server process to watch (RSS, CPU, descriptors, TCP connections, goroutines from its /metrics); repeatable or comma-separated (default: the process listening on --url's port, when it can be found in /proc)")
	fs.BoolVar(&cfg.NoWatch, "no-watch", false, "watch no server process")
	fs.DurationVar(&cfg.Sample, "sample", 0, "soak mode: sample the watched processes this often, report min/first-third/last-third/max and slope of each figure (default: RSS and CPU only, every second)")
	fs.StringVar(&sampleOut, "sample-out", "", "append every sample to this file as a JSON line, as it is taken")
	fs.StringVar(&progressMode, "progress", "auto", "a progress line every second on stderr: auto (when stderr is a terminal), on, off")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: xcload --component C --event E [--machine M] [--instances N] [--duration D | --requests N] [--rate R] [flags]")
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
	switch progressMode {
	case "on":
		cfg.Progress = stderr
	case "auto":
		if isTerminal(stderr) {
			cfg.Progress = stderr
		}
	case "off":
	default:
		return cfg, fmt.Errorf("--progress %q: want auto, on or off", progressMode)
	}
	if err := cfg.check(); err != nil {
		return cfg, err
	}
	if sampleOut != "" {
		f, err := os.OpenFile(sampleOut, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return cfg, fmt.Errorf("--sample-out: %w", err)
		}
		cfg.SampleOut = f // closed by the process's exit
	}
	return cfg, nil
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
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("--rate %v: want events per second, 0 for flat out", c.Rate)
	case c.Duration == 0 && c.Requests == 0:
		return errors.New("give --duration or --requests: the run must stop by itself")
	case c.Sample < 0:
		return errors.New("--sample must not be negative")
	case c.ContextSize < 0:
		return errors.New("--context-size must not be negative")
	}
	if c.Endpoint == "" {
		c.Endpoint = "events"
	}
	switch c.Client {
	case "":
		c.Client = "fast"
	case "fast", "std":
	default:
		return fmt.Errorf("--client %q: want fast or std", c.Client)
	}
	if _, ok := endpoints[c.Endpoint]; !ok {
		return fmt.Errorf("--endpoint %q: want events, instance-events or trigger", c.Endpoint)
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

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
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
	Endpoint    string           `json:"endpoint"`
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
	Latency     Latency          `json:"latencyMs"`      // of the 200 answers, from the actual send
	Rate        *RateReport      `json:"rate,omitempty"` // --rate runs only
	FirstErrors []string         `json:"firstErrors,omitempty"`
	// Servers are the watched local server processes (RSS, CPU, and with --sample the
	// flatness of RSS, goroutines, descriptors and connections); Samples their readings
	// (--sample only).
	Servers []ServerReport `json:"servers,omitempty"`
	Samples []ProcSample   `json:"samples,omitempty"`
}

// RateReport is what an open-loop (--rate) run adds to the report.
type RateReport struct {
	Target   float64 `json:"target"`   // events/s asked for
	Achieved float64 `json:"achieved"` // requests sent in the measured period / its sending window
	// Late counts the requests that found every instance (or every worker) busy at their
	// scheduled time and were sent only when one was answered.
	Late int64 `json:"late"`
	// Unsent counts the requests scheduled in the measured period but not sent by the end of
	// --duration (the server could not keep up).
	Unsent int64 `json:"unsent"`
	// FromSchedule is the latency of the 200 answers measured from the scheduled send time,
	// so that waiting for a busy instance counts (no coordinated omission).
	FromSchedule Latency `json:"latencyFromScheduleMs"`
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
	if r.Rate != nil {
		x := r.Rate
		fmt.Fprintf(&b, "rate         target %.0f/s  achieved %.0f/s  late %d  unsent %d\n", x.Target, x.Achieved, x.Late, x.Unsent)
		s := x.FromSchedule
		fmt.Fprintf(&b, "latency ms   from schedule  p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f\n", s.P50, s.P90, s.P99, s.Max, s.Mean)
		fmt.Fprintf(&b, "latency ms   from send      p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	} else {
		fmt.Fprintf(&b, "latency ms   p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	}
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
	for _, s := range r.Servers {
		fmt.Fprintf(&b, "server       pid %d (%s)  RSS start %.1f MiB  peak %.1f MiB  end %.1f MiB  CPU %.2f s, %.3f ms per event  (%d samples)\n",
			s.PID, s.Name, s.RSSStartMiB, s.RSSPeakMiB, s.RSSEndMiB, s.CPUSeconds, s.CPUMsPerEvent, s.Samples)
		for _, f := range s.Flatness {
			fmt.Fprintf(&b, "  %s\n", f)
		}
		if s.Error != "" {
			fmt.Fprintf(&b, "  read error: %s\n", s.Error)
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
		Endpoint: cfg.Endpoint, Instances: cfg.Instances, Concurrency: workers, Errors: map[string]int64{}}

	start := time.Now()
	st := &runState{}
	smp, err := watch(ctx, &cfg, start)
	if err != nil {
		return nil, err
	}
	bg, stopBG := context.WithCancel(ctx)
	var bgWG sync.WaitGroup
	defer func() { stopBG(); bgWG.Wait() }()
	if smp != nil {
		// Each read has its own timeout; the last sample is taken after ctx ends.
		bgWG.Go(func() { smp.run(bg, context.WithoutCancel(ctx)) })
	}
	if cfg.Progress != nil {
		bgWG.Go(func() { progress(bg, cfg.Progress, start, st.measureFrom, &st.live, smp) })
	}

	ids, err := cl.createAll(ctx, cfg.Instances, min(workers, 32))
	if err != nil {
		return nil, err
	}
	rep.Setup = time.Since(start)
	// The fast client's workers dial their own connections: the creation's idle ones would
	// only hold server resources during the run.
	tr.CloseIdleConnections()

	field := endpoints[cfg.Endpoint].field
	bodies := make([][]byte, len(cfg.Events))
	for i, e := range cfg.Events {
		ev := map[string]any{field: e}
		if cfg.Payload != nil {
			ev["payload"] = cfg.Payload
		}
		if bodies[i], err = json.Marshal(ev); err != nil {
			return nil, err
		}
	}

	var (
		results []workerResult
		mstart  int64 // unix ns of the start of the measured period (0: never started)
		rr      *RateReport
	)
	if cfg.Rate > 0 {
		results, mstart, rr = openLoop(ctx, &cfg, cl, ids, bodies, workers, st)
	} else {
		results, mstart = closedLoop(ctx, &cfg, cl, ids, bodies, workers, st)
	}
	end := time.Now()
	stopBG()
	bgWG.Wait()
	if smp != nil {
		from := math.Inf(1)
		if mstart > 0 {
			from = time.Unix(0, mstart).Sub(start).Seconds()
		}
		// rep.OK is summed below: count it here from the results.
		var ok int64
		for i := range results {
			ok += int64(len(results[i].lat))
		}
		rep.Servers = smp.reports(from, cfg.Sample > 0, ok)
		if cfg.Sample > 0 {
			rep.Samples = smp.samples
		}
	}
	if mstart > 0 {
		rep.Elapsed = end.Sub(time.Unix(0, mstart))
	}
	var lats, slats []time.Duration
	var lastSend time.Time
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
		slats = append(slats, r.slat...)
		if rr != nil {
			rr.Late += r.late
		}
		if r.lastSend.After(lastSend) {
			lastSend = r.lastSend
		}
	}
	if rep.Elapsed > 0 {
		rep.EventsPerS = float64(rep.OK) / rep.Elapsed.Seconds()
	}
	rep.Latency = percentiles(lats)
	if rr != nil {
		rr.FromSchedule = percentiles(slats)
		// N requests sent on time span (N-1)/rate: the window adds one interval so that an
		// on-time run reports exactly its target.
		if window := lastSend.Sub(time.Unix(0, mstart)) + time.Duration(float64(time.Second)/cfg.Rate); mstart > 0 && rep.Requests > 0 && window > 0 {
			rr.Achieved = float64(rep.Requests) / window.Seconds()
		}
		rep.Rate = rr
	}
	if err := ctx.Err(); err != nil && rep.Requests == 0 {
		return nil, err
	}
	return rep, nil
}

// closedLoop is the flat-out mode: each worker drives its own instances, sending the next
// request as soon as the previous one is answered.
func closedLoop(ctx context.Context, cfg *Config, cl *client, ids []string, bodies [][]byte, workers int, st *runState) ([]workerResult, int64) {
	var deadline time.Time // zero: no time limit
	var (
		budget   atomic.Int64 // requests left when --requests is set
		measured atomic.Bool  // warmup over
		mstart   = &st.mstart // unix ns of the start of the measured period
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
			snd := cl.newSender(ctx)
			defer snd.close()
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
				status, msg, err := snd.send(mine[k], body)
				lat := time.Since(t0)
				if err != nil && ctx.Err() != nil {
					return // interrupted: this request is not counted
				}
				st.live.observe(err == nil && status == http.StatusOK, lat, measured.Load())
				if !measured.Load() {
					continue
				}
				res.record(mine[k], status, msg, err, lat, lat)
			}
		})
	}
	wg.Wait()
	return results, mstart.Load()
}

// openLoop is the --rate mode: request i is due at begin + i/rate whatever the answers. Each
// due request goes to an idle instance (so an instance still has at most one request in
// flight and its events keep their order) through one of the workers; when none is idle it
// waits, is counted late, and its latency from the schedule includes the wait.
func openLoop(ctx context.Context, cfg *Config, cl *client, ids []string, bodies [][]byte, workers int, st *runState) ([]workerResult, int64, *RateReport) {
	type job struct {
		inst  int
		sched time.Time
		late  bool
	}
	var (
		idle    = make(chan int, len(ids)) // instances with no request in flight, FIFO: round robin
		jobs    = make(chan job)
		sent    = make([]int, len(ids)) // events sent to each instance; owned by the instance's holder
		wg      sync.WaitGroup
		results = make([]workerResult, workers)
		rr      = &RateReport{Target: cfg.Rate}
	)
	for i := range ids {
		idle <- i
	}
	begin := time.Now()
	mstart := begin.Add(cfg.Warmup)
	st.mstart.Store(mstart.UnixNano())
	var deadline time.Time // zero: no time limit
	if cfg.Duration > 0 {
		deadline = mstart.Add(cfg.Duration)
	}
	for w := range workers {
		wg.Go(func() {
			snd := cl.newSender(ctx)
			defer snd.close()
			res := &results[w]
			res.errors = map[string]int64{}
			for j := range jobs {
				id := ids[j.inst]
				body := bodies[sent[j.inst]%len(bodies)]
				sent[j.inst]++
				t0 := time.Now()
				status, msg, err := snd.send(id, body)
				done := time.Now()
				idle <- j.inst
				if err == nil || ctx.Err() == nil {
					st.live.observe(err == nil && status == http.StatusOK, done.Sub(j.sched), !j.sched.Before(mstart))
				}
				if (err != nil && ctx.Err() != nil) || j.sched.Before(mstart) {
					continue // interrupted, or in the warmup: not counted
				}
				if j.late {
					res.late++
				}
				res.lastSend = t0
				res.record(id, status, msg, err, done.Sub(t0), done.Sub(j.sched))
			}
		})
	}
	interval := float64(time.Second) / cfg.Rate
	var timer *time.Timer
dispatch:
	for i := int64(0); ; i++ {
		sched := begin.Add(time.Duration(float64(i) * interval))
		if cfg.Requests > 0 && i >= cfg.Requests || !deadline.IsZero() && !sched.Before(deadline) {
			break
		}
		if d := time.Until(sched); d > 0 {
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			select {
			case <-ctx.Done():
				break dispatch
			case <-timer.C:
			}
		}
		// Past the deadline the server could not keep up: what is still due is not sent.
		if !deadline.IsZero() && time.Now().After(deadline) {
			if !sched.Before(mstart) {
				rr.Unsent += int64(math.Ceil(float64(deadline.Sub(sched)) / interval))
			}
			break
		}
		j := job{sched: sched}
		select {
		case j.inst = <-idle:
		default:
			j.late = true
			select {
			case j.inst = <-idle:
			case <-ctx.Done():
				break dispatch
			}
		}
		select {
		case jobs <- j:
		default:
			j.late = true
			select {
			case jobs <- j:
			case <-ctx.Done():
				break dispatch
			}
		}
	}
	close(jobs)
	wg.Wait()
	if time.Now().Before(mstart) { // ended within the warmup
		return results, 0, rr
	}
	return results, mstart.UnixNano(), rr
}

// runState is what the loops share with the progress display.
type runState struct {
	live   liveStats
	mstart atomic.Int64 // unix ns of the start of the measured period, once known
}

func (s *runState) measureFrom() time.Time {
	if ns := s.mstart.Load(); ns > 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// watch finds the server processes to watch and starts nothing yet: nil when there are none.
func watch(ctx context.Context, cfg *Config, begin time.Time) (*sampler, error) {
	if cfg.NoWatch {
		return nil, nil
	}
	proc := cfg.Proc
	if proc == "" {
		proc = "/proc"
	}
	pids := slices.Clone(cfg.ServerPIDs)
	basePID := 0
	if u, err := url.Parse(cfg.URL); err == nil && isLoopback(u.Hostname()) {
		port, _ := strconv.Atoi(u.Port())
		if port == 0 {
			port = map[string]int{"http": 80, "https": 443}[u.Scheme]
		}
		// Not finding it is not an error: the server may run in this process, elsewhere, or
		// in a container.
		if pid, err := proc.listener(port); err == nil && pid > 0 {
			basePID = pid
			if len(pids) == 0 {
				pids = append(pids, pid)
			}
		}
	}
	if len(pids) == 0 {
		return nil, nil
	}
	var procs []watched
	for _, pid := range pids {
		if _, err := proc.sample(pid); err != nil {
			return nil, fmt.Errorf("--server-pid: %w", err)
		}
		procs = append(procs, watched{pid: pid})
	}
	every := cfg.Sample
	if every == 0 {
		every = time.Second
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 2}, Timeout: 5 * time.Second}
	s := newSampler(proc, hc, cfg.Token, procs, every, begin, cfg.SampleOut)
	s.discover(ctx, cfg.URL, basePID)
	return s, nil
}

type workerResult struct {
	requests int64
	lat      []time.Duration // 200 answers, from the actual send
	slat     []time.Duration // 200 answers, from the scheduled send (--rate)
	errors   map[string]int64
	first    []string
	late     int64
	lastSend time.Time
}

// record counts one answered (or failed) request of the measured period.
func (r *workerResult) record(id string, status int, msg string, err error, lat, fromSched time.Duration) {
	r.requests++
	switch {
	case err != nil:
		r.fail("transport", fmt.Sprintf("%s: %v", id, err))
	case status != http.StatusOK:
		r.fail(fmt.Sprintf("HTTP %d", status), fmt.Sprintf("%s: HTTP %d %s", id, status, msg))
	default:
		r.lat = append(r.lat, lat)
		r.slat = append(r.slat, fromSched)
	}
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
	req, err := c.request(ctx, endpoints[c.cfg.Endpoint].path(c.cfg.Component, id), body)
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
	if n := c.cfg.ContextSize; n > 0 {
		padded := maps.Clone(body["context"].(map[string]any))
		delete(padded, "pad")
		raw, err := json.Marshal(padded)
		if err != nil {
			return nil, err
		}
		// {…,"pad":"xx…"}: the field adds 9 bytes (8 for the first field) besides its value.
		padded["pad"] = strings.Repeat("x", max(0, n-len(raw)-9))
		body["context"] = padded
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
	// 201 is this API's answer; xcomponent-ai's server answers 200 (and may name the id "id"),
	// and the tool must drive both for a side-by-side comparison.
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("create instance: HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	var out struct {
		InstanceID string `json:"instanceId"`
		ID         string `json:"id"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.InstanceID == "" && out.ID == "" {
		return "", fmt.Errorf("create instance: HTTP %d with no instanceId or id: %s", resp.StatusCode, raw)
	}
	if out.InstanceID != "" {
		return out.InstanceID, nil
	}
	return out.ID, nil
}
