package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"github.com/xcomponent/xcomponent/internal/faults"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
)

// otlpReceiver is a tiny OTLP/HTTP trace receiver: it keeps the spans it is sent, with the
// service.name of their resource.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []receivedSpan
}

type receivedSpan struct {
	service, name, traceID, spanID, parentID string
	attrs                                    map[string]string
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil || req.URL.Path != "/v1/traces" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range msg.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, toReceived(service, s))
			}
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func toReceived(service string, s *tracepb.Span) receivedSpan {
	rs := receivedSpan{service: service, name: s.GetName(), traceID: hex.EncodeToString(s.GetTraceId()),
		spanID: hex.EncodeToString(s.GetSpanId()), parentID: hex.EncodeToString(s.GetParentSpanId()), attrs: map[string]string{}}
	for _, a := range s.GetAttributes() {
		v := a.GetValue()
		switch {
		case v.GetStringValue() != "":
			rs.attrs[a.GetKey()] = v.GetStringValue()
		default:
			rs.attrs[a.GetKey()] = strconv.FormatInt(v.GetIntValue(), 10)
		}
	}
	return rs
}

func (r *otlpReceiver) find(service, name, attr, value string) (receivedSpan, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.spans {
		if s.service == service && s.name == name && (attr == "" || s.attrs[attr] == value) {
			return s, true
		}
	}
	return receivedSpan{}, false
}

// stderrLog keeps every stderr line of a process.
type stderrLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *stderrLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *stderrLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimRight(l.buf.String(), "\n"), "\n")
}

// jsonLines parses every line as a JSON object, failing the test on the first that is not.
func jsonLines(t *testing.T, name string, lines []string) []map[string]any {
	t.Helper()
	out := make([]map[string]any, 0, len(lines))
	for i, line := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("%s: stderr line %d is not a JSON object (%v): %q", name, i+1, err, line)
			continue
		}
		out = append(out, v)
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTracedOrderFlowAndJSONLogs runs the distributed example as an operator would: two
// `xcomponent runtime` processes (orders, payments) on PostgreSQL and RabbitMQ, tracing on
// through the standard OTEL_* environment towards an OTLP receiver, logs in JSON. An order's
// SUBMIT, requested over HTTP, is one trace down to the payment runtime's creation of the
// payment; every line either process wrote on stderr (migrations included) is a JSON object,
// and the lines logged inside the traced request carry its trace id.
func TestTracedOrderFlowAndJSONLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: -short")
	}
	dsn := pgtest.NewDatabase(t)
	_, url := rmqtest.NewVhost(t)
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()

	type proc struct {
		name string
		cmd  *exec.Cmd
		log  *stderrLog
		port int
	}
	start := func(name, file string) *proc {
		p := &proc{name: name, log: &stderrLog{}, port: faults.FreePort(t)}
		p.cmd = exec.Command(binary, "runtime", "--log-format", "json")
		p.cmd.Env = append(p.cmd.Environ(), "BROKER_URL="+url, "DATABASE_URL="+dsn, "COMPONENT_FILE="+file,
			"RUNTIME_NAME="+name, "PORT="+strconv.Itoa(p.port), "HEARTBEAT_INTERVAL=1s",
			"OTEL_EXPORTER_OTLP_ENDPOINT="+collector.URL, "OTEL_SERVICE_NAME="+name, "OTEL_BSP_SCHEDULE_DELAY=100")
		p.cmd.Stderr = p.log
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if p.cmd.ProcessState == nil {
				_ = p.cmd.Process.Kill()
				_ = p.cmd.Wait()
			}
			if t.Failed() {
				t.Logf("%s stderr:\n%s", name, strings.Join(p.log.lines(), "\n"))
			}
		})
		waitUntil(t, name+" ready", func() bool {
			resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(p.port) + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		return p
	}
	orders := start("orders", "../../examples/distributed/order.yaml")
	payments := start("payments", "../../examples/distributed/payment.yaml")

	api := "http://127.0.0.1:" + strconv.Itoa(orders.port)
	post := func(path, body string) map[string]any {
		resp, err := http.Post(api+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %s %v", path, resp.Status, v)
		}
		return v
	}
	created := post("/api/components/OrderComponent/instances", `{"context":{"orderId":"ORD-7","customerId":"C-7","amount":30,"paymentMethod":"visa"}}`)
	orderID, _ := created["instanceId"].(string)
	post("/api/instances/"+orderID+"/trigger", `{"type":"SUBMIT"}`)

	var submit, create receivedSpan
	waitUntil(t, "the payment's creation span, in the SUBMIT's trace", func() bool {
		var ok1, ok2 bool
		submit, ok1 = recv.find("orders", "xcomponent.transition", "xcomponent.event", "SUBMIT")
		create, ok2 = recv.find("payments", "xcomponent.create", "xcomponent.component", "PaymentComponent")
		return ok1 && ok2
	})
	if create.traceID != submit.traceID {
		t.Fatalf("the payment was created in trace %s, the order's SUBMIT is trace %s", create.traceID, submit.traceID)
	}
	if req, ok := recv.find("orders", "POST /api/instances/{id}/trigger", "", ""); !ok || req.traceID != submit.traceID || submit.parentID != req.spanID {
		t.Errorf("SUBMIT's span is not the child of its HTTP request's span: %+v / %+v", submit, req)
	}

	for _, p := range []*proc{orders, payments} {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", p.name, err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s did not stop", p.name)
		}
	}
	traced := false
	for _, p := range []*proc{orders, payments} {
		lines := jsonLines(t, p.name, p.log.lines())
		migrated := false
		for _, l := range lines {
			if l["msg"] == "database migrated" {
				migrated = true
			}
			if l["trace_id"] == submit.traceID {
				traced = true
			}
			for _, k := range []string{"time", "level", "msg"} {
				if _, ok := l[k]; !ok {
					t.Errorf("%s: line without %s: %v", p.name, k, l)
				}
			}
		}
		if p == orders && !migrated {
			t.Errorf("%s: no 'database migrated' line among its JSON lines", p.name)
		}
	}
	if !traced {
		t.Errorf("no log line carries the SUBMIT's trace id %s", submit.traceID)
	}

	// Errors, usage errors included, are JSON lines too.
	var stderr bytes.Buffer
	cmd := exec.CommandContext(context.Background(), binary, "serve", "--log-format", "json", "--no-such-flag")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Error("serve --no-such-flag succeeded")
	}
	for _, l := range jsonLines(t, "serve --no-such-flag", strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")) {
		if l["level"] != "ERROR" || !strings.Contains(l["msg"].(string), "no-such-flag") {
			t.Errorf("usage error line: %v", l)
		}
	}
}
