package distributed_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/wire"
)

// dashboardFile is the Grafana dashboard of the distributed mode.
const dashboardFile = "../deploy/grafana/xcomponent-distributed.json"

// scrape returns the metric names a runtime exposes (a histogram's _bucket, _sum and _count
// series included) and the raw text.
func scrape(t *testing.T, url string) (map[string]bool, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			if f[3] == "histogram" || f[3] == "summary" {
				names[f[2]+"_bucket"], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
			}
		}
	}
	return names, string(raw)
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promVars     = regexp.MustCompile(`\$\{?\w+\}?`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	labelValues  = regexp.MustCompile(`label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)`)
	promKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
		"group_right": true, "and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}
)

// metricNames returns the metric names a PromQL expression reads.
func metricNames(expr string) []string {
	e := promVars.ReplaceAllString(expr, "")
	e = promStrings.ReplaceAllString(e, "")
	e = promMatchers.ReplaceAllString(e, "")
	e = promRanges.ReplaceAllString(e, "")
	e = promGrouping.ReplaceAllString(e, "")
	var out []string
	for _, m := range promIdent.FindAllStringSubmatch(e, -1) {
		if m[1] != "" || promKeywords[strings.ToLower(m[0])] { // a function call, a keyword
			continue
		}
		out = append(out, m[0])
	}
	return out
}

// queries returns every PromQL expression of the dashboard (panel targets) and the metric
// names of its template variables.
func queries(t *testing.T) (exprs []string, varMetrics []string) {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				walk(c, k)
			}
		case []any:
			for _, c := range x {
				walk(c, key)
			}
		case string:
			switch key {
			case "expr":
				exprs = append(exprs, x)
			case "query", "definition":
				for _, m := range labelValues.FindAllStringSubmatch(x, -1) {
					varMetrics = append(varMetrics, m[1])
				}
			}
		}
	}
	walk(doc, "")
	return exprs, varMetrics
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (component, queue) (rate(runtime_commands_acked_total{component=~"$component"}[$__rate_interval]))`: {"runtime_commands_acked_total"},
		`histogram_quantile(0.99, sum by (le) (rate(timer_lag_seconds_bucket[5m])))`:                                {"timer_lag_seconds_bucket"},
		`a_total / on (x) group_left b_total > bool 0`:                                                              {"a_total", "b_total"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %v, want %v", expr, got, want)
		}
	}
}

// TestGrafanaDashboardMetrics: every query of deploy/grafana's dashboard names a metric that a
// runtime exposes, and the series of the distributed metrics have bounded labels (the
// runtime's own component, its queues and partitions), even after a command for an unknown
// component and an undecodable one.
func TestGrafanaDashboardMetrics(t *testing.T) {
	url := vhost(t)
	oc := &outcomes{n: map[string]int{}}
	const comp = "PaymentComponent"
	rt := distributedtest.Start(t, distributed.Config{ComponentFile: "../examples/distributed/payment.yaml", BrokerURL: url,
		StoreSpec: "memory", RuntimeName: "metrics", HeartbeatInterval: 200 * time.Millisecond, Partitions: 4, Port: freePort(t),
		MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, Logger: logger(t), OnCommand: oc.add,
		Hooks: distributed.Hooks{"notifyPaymentValidated": func(context.Context, *xcomponent.Hook) error {
			return errors.New("mail server down") // an onEntry error: counted, the transition stands
		}}})
	api := "http://" + rt.Info.Addr.String()
	client := newClient(t, url)
	publish(t, client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: comp,
		Context: map[string]any{"orderId": "O-1", "amount": 3}, Timestamp: wire.Now()}, "")
	publish(t, client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: "Client-Chosen-Name", Timestamp: wire.Now()}, "")
	eventually(t, "commands handled", func() bool {
		return oc.count(wire.ChannelCreateInstance, distributed.OutcomeApplied) == 1 &&
			oc.count(wire.ChannelCreateInstance, distributed.OutcomeDeadLettered) == 1
	})
	created := post(t, api+"/api/components/"+comp+"/instances", `{"context":{"orderId":"O-2","amount":5}}`)
	id, _ := created["instanceId"].(string)
	post(t, api+"/api/instances/"+id+"/trigger", `{"type":"PROCESS"}`)
	post(t, api+"/api/instances/"+id+"/trigger", `{"type":"VALIDATE"}`)
	names, raw := scrape(t, api+"/metrics")

	exprs, vars := queries(t)
	if len(exprs) < 10 {
		t.Fatalf("%s: %d queries found", dashboardFile, len(exprs))
	}
	used := map[string]bool{}
	for _, e := range exprs {
		ms := metricNames(e)
		if len(ms) == 0 {
			t.Errorf("query %q names no metric", e)
		}
		for _, m := range ms {
			used[m] = true
			if !names[m] {
				t.Errorf("query %q: metric %s is not exposed by the runtime", e, m)
			}
		}
	}
	for _, m := range vars {
		if !names[m] {
			t.Errorf("template variable: metric %s is not exposed by the runtime", m)
		}
	}
	// The metrics of the distributed mode are all on the dashboard.
	for n := range names {
		if strings.HasPrefix(n, "runtime_") && !used[n] {
			t.Errorf("metric %s is not on the dashboard", n)
		}
	}
	// Bounded labels.
	allowed := map[string]map[string]bool{
		"component": {comp: true},
		"queue":     {"partition": true, "ingress": true, "cross_component": true},
		"partition": {"0": true, "1": true, "2": true, "3": true},
	}
	label := regexp.MustCompile(`(\w+)="([^"]*)"`)
	for _, line := range strings.Split(raw, "\n") {
		if !strings.HasPrefix(line, "runtime_") {
			continue
		}
		for _, m := range label.FindAllStringSubmatch(line, -1) {
			if ok, known := allowed[m[1]]; known && !ok[m[2]] {
				t.Errorf("series with an unexpected %s label value: %s", m[1], line)
			}
		}
	}
	for _, want := range []string{
		`runtime_commands_consumed_total{component="PaymentComponent",queue="ingress"} 2`,
		`runtime_commands_dead_lettered_total{component="PaymentComponent",queue="ingress"} 1`,
		`runtime_commands_acked_total{component="PaymentComponent",queue="partition"} 1`,
		`runtime_outbox_backlog{component="PaymentComponent"} 0`,
		`runtime_broker_reconnections_total{component="PaymentComponent"} 0`,
	} {
		if !strings.Contains(raw, want+"\n") {
			t.Errorf("/metrics has no line %q", want)
		}
	}
}
