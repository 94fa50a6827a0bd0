package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	xc "github.com/xcomponent/xcomponent"
)

// Metrics holds the Prometheus metrics of one process, on a private registry. It implements
// xcomponent.Observer: pass it to the engine's Options.Observer
// and to this package's Options.Metrics, which serves it at /metrics.
type Metrics struct {
	reg *prometheus.Registry

	transitions  *prometheus.CounterVec
	ignored      *prometheus.CounterVec
	hookErrors   *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	timerLag     prometheus.Histogram
	storeErrors  prometheus.Counter
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	// Label children, cached so that Observer calls do not hash label values each time.
	mu          sync.RWMutex
	transByKey  map[transitionKey]prometheus.Counter
	durByKey    map[machineKey]prometheus.Observer
	ignoredKey  map[machineKey]prometheus.Counter
	hookErrsKey map[machineKey]prometheus.Counter
	httpByKey   map[httpKey]httpSeries

	// source computes the scrape-time gauges (set by New from its Backend).
	source atomic.Pointer[statsSource]
}

type statsSource struct {
	stats   func(context.Context) (Stats, error)
	timeout time.Duration
}

type transitionKey struct{ component, machine, from, to, event string }
type machineKey struct{ component, machine string }
type httpKey struct {
	method, route string
	code          int
}
type httpSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

var (
	_ xc.Observer = (*Metrics)(nil)
)

// NewMetrics returns the metrics of a process, with the Go runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "transitions_total", Help: "Transitions applied.",
		}, []string{"component", "machine", "from", "to", "event"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "events_ignored_total", Help: "Events not accepted (no transition, guard false, veto, completed instance).",
		}, []string{"component", "machine"}),
		hookErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hook_errors_total", Help: "Hook errors (onEntry errors and vetoes).",
		}, []string{"component", "machine"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "transition_duration_seconds", Help: "Time to process one transition, hooks and commit included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"component", "machine"}),
		timerLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "timer_lag_seconds", Help: "How late timers fired after their deadline.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300},
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "store_errors_total", Help: "Store commits that failed.",
		}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"method", "route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "HTTP request latency (streams excluded).",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
		transByKey:  map[transitionKey]prometheus.Counter{},
		durByKey:    map[machineKey]prometheus.Observer{},
		ignoredKey:  map[machineKey]prometheus.Counter{},
		hookErrsKey: map[machineKey]prometheus.Counter{},
		httpByKey:   map[httpKey]httpSeries{},
	}
	m.reg.MustRegister(m.transitions, m.ignored, m.hookErrors, m.duration, m.timerLag, m.storeErrors,
		m.httpRequests, m.httpDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newGaugeCollector(m))
	return m
}

// Registry returns the private registry, to register more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Transition implements xcomponent.Observer.
func (m *Metrics) Transition(component, machine, from, to, event string, seconds float64) {
	tk := transitionKey{component, machine, from, to, event}
	mk := machineKey{component, machine}
	m.mu.RLock()
	c, okC := m.transByKey[tk]
	d, okD := m.durByKey[mk]
	m.mu.RUnlock()
	if !okC || !okD {
		m.mu.Lock()
		if c, okC = m.transByKey[tk]; !okC {
			c = m.transitions.WithLabelValues(component, machine, from, to, event)
			m.transByKey[tk] = c
		}
		if d, okD = m.durByKey[mk]; !okD {
			d = m.duration.WithLabelValues(component, machine)
			m.durByKey[mk] = d
		}
		m.mu.Unlock()
	}
	c.Inc()
	d.Observe(seconds)
}

// EventIgnored implements xcomponent.Observer.
func (m *Metrics) EventIgnored(component, machine string) {
	m.machineCounter(m.ignoredKey, m.ignored, component, machine).Inc()
}

// HookError implements xcomponent.Observer.
func (m *Metrics) HookError(component, machine string) {
	m.machineCounter(m.hookErrsKey, m.hookErrors, component, machine).Inc()
}

// StoreError implements xcomponent.Observer.
func (m *Metrics) StoreError() { m.storeErrors.Inc() }

// TimerFired implements xcomponent.Observer.
func (m *Metrics) TimerFired(lagSeconds float64) { m.timerLag.Observe(lagSeconds) }

func (m *Metrics) machineCounter(cache map[machineKey]prometheus.Counter, vec *prometheus.CounterVec, component, machine string) prometheus.Counter {
	k := machineKey{component, machine}
	m.mu.RLock()
	c, ok := cache[k]
	m.mu.RUnlock()
	if ok {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok = cache[k]; !ok {
		c = vec.WithLabelValues(component, machine)
		cache[k] = c
	}
	return c
}

// observeHTTP records one served request; route is the matched pattern ("" when none).
// The method is the client's choice: only the standard methods are labels, others are
// "OTHER", so that invented methods cannot grow the registry (route is a pattern of the
// route table, never the path, and code a status this server wrote).
func (m *Metrics) observeHTTP(method, route string, code int, d time.Duration, stream bool) {
	if route == "" {
		route = "unmatched"
	}
	k := httpKey{metricMethod(method), route, code}
	m.mu.RLock()
	series, ok := m.httpByKey[k]
	m.mu.RUnlock()
	if !ok {
		m.mu.Lock()
		if series, ok = m.httpByKey[k]; !ok {
			series = httpSeries{requests: m.httpRequests.WithLabelValues(k.method, route, strconv.Itoa(code)),
				duration: m.httpDuration.WithLabelValues(k.method, route)}
			m.httpByKey[k] = series
		}
		m.mu.Unlock()
	}
	series.requests.Inc()
	if !stream {
		series.duration.Observe(d.Seconds())
	}
}

// metricMethod maps a request method to a bounded label.
func metricMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "OTHER"
}

// setSource makes the scrape-time gauges come from stats.
func (m *Metrics) setSource(stats func(context.Context) (Stats, error), timeout time.Duration) {
	m.source.Store(&statsSource{stats: stats, timeout: timeout})
}

// gaugeCollector computes instances, timers_pending, outbox_pending and broker_connected when
// scraped.
type gaugeCollector struct {
	m                                      *Metrics
	instances, timers, outbox, broker, bad *prometheus.Desc
}

func newGaugeCollector(m *Metrics) *gaugeCollector {
	return &gaugeCollector{m: m,
		instances: prometheus.NewDesc("instances", "Live instances per state.", []string{"component", "machine", "state"}, nil),
		timers:    prometheus.NewDesc("timers_pending", "Armed timers of live instances.", nil, nil),
		outbox:    prometheus.NewDesc("outbox_pending", "Undelivered outbox messages (counted up to 1000).", nil, nil),
		broker:    prometheus.NewDesc("broker_connected", "1 when the broker is connected (0 in single mode without a broker).", nil, nil),
		bad:       prometheus.NewDesc("stats_scrape_failed", "1 when the last computation of these gauges failed.", nil, nil),
	}
}

func (g *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{g.instances, g.timers, g.outbox, g.broker, g.bad} {
		ch <- d
	}
}

func (g *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	src := g.m.source.Load()
	if src == nil {
		gauge(g.broker, 0)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), src.timeout)
	defer cancel()
	st, err := src.stats(ctx)
	for _, s := range st.Instances {
		gauge(g.instances, float64(s.Count), s.Component, s.Machine, s.State)
	}
	gauge(g.timers, float64(st.TimersPending))
	gauge(g.outbox, float64(st.OutboxPending))
	gauge(g.broker, b2f(st.BrokerConnected))
	gauge(g.bad, b2f(err != nil))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
