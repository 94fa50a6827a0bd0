package e2e

import (
	"bufio"
	"fmt"
	"github.com/xcomponent/xcomponent/internal/faults"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
)

// TestDistributedExample runs the distributed example as its README says, without Docker:
// examples/distributed/run-local.sh (own vhost, own database, shifted ports) starts the
// dashboard, two approval runtimes and the order and payment runtimes (the example's Go
// program with its hooks). Through the dashboard's API: an order is created and submitted,
// its payment appears in PaymentComponent with the mapped context, PROCESS makes the Go hook
// validate it by itself, COMPLETE pays the order, which is shipped and delivered. The rows of
// fsm_events of both instances are then checked one by one, and Ctrl-C (SIGINT) stops
// everything cleanly.
func TestDistributedExample(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: -short")
	}
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql not installed")
	}
	t.Parallel()
	_, brokerURL := rmqtest.NewVhost(t)
	b := newBackend(t, "postgres")
	offset := freeOffset(t, 3000, 8081, 8082, 8083, 8084)
	logDir := t.TempDir()

	cmd := exec.Command("bash", filepath.Join("..", "..", "examples", "distributed", "run-local.sh"))
	cmd.Env = append(os.Environ(), "BROKER_URL="+brokerURL, "DATABASE_URL="+b.dsn, "PORT_OFFSET="+strconv.Itoa(offset),
		"LOG_DIR="+logDir, "BIN_DIR="+t.TempDir(), "PAYMENT_VALIDATION_DELAY=50ms")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		outMu sync.Mutex
		out   strings.Builder
	)
	up := make(chan struct{})
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			outMu.Lock()
			out.WriteString(sc.Text() + "\n")
			outMu.Unlock()
			// The banner's last line: everything it prints before is in out.
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C to stop everything.") {
				once.Do(func() { close(up) })
			}
		}
		exited <- cmd.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
			}
		}
		if t.Failed() {
			for _, f := range []string{"dashboard", "runtime-order", "runtime-payment"} {
				b, _ := os.ReadFile(filepath.Join(logDir, f+".log"))
				t.Logf("%s.log (end):\n%s", f, tailOf(string(b), 30))
			}
		}
	})
	select {
	case <-up:
	case err := <-exited:
		outMu.Lock()
		defer outMu.Unlock()
		t.Fatalf("run-local.sh exited (%v) before the services were up:\n%s", err, out.String())
	case <-time.After(4 * time.Minute):
		t.Fatal("run-local.sh: services not up after 4 minutes")
	}
	outMu.Lock()
	dashURL := fmt.Sprintf("http://localhost:%d", 3000+offset)
	if !strings.Contains(out.String(), "Dashboard:  "+dashURL) {
		t.Errorf("run-local.sh does not print the dashboard URL %s:\n%s", dashURL, out.String())
	}
	outMu.Unlock()
	c := newClient(dashURL)
	defer c.close()

	// The runtimes panel lists the four runtimes, up.
	waitFor(t, "four runtimes up in the dashboard", func() (bool, string) {
		var rts struct {
			Runtimes []struct {
				RuntimeName, ComponentName, Status string
			} `json:"runtimes"`
		}
		st, raw, err := c.do("GET", "/api/runtimes", nil, &rts)
		if err != nil || st != 200 {
			return false, fmt.Sprint(st, err, string(raw))
		}
		up := map[string]string{}
		for _, r := range rts.Runtimes {
			if r.Status == "up" {
				up[r.RuntimeName] = r.ComponentName
			}
		}
		ok := up["runtime-approval"] == "ApprovalWorkflow" && up["runtime-approval-2"] == "ApprovalWorkflow" &&
			up["runtime-order"] == "OrderComponent" && up["runtime-payment"] == "PaymentComponent"
		return ok, string(raw)
	})

	orderID := fmt.Sprintf("ORD-%08x", rand.Uint32())
	orderCtx := map[string]any{"orderId": orderID, "customerId": "CUST-42", "amount": 99.5, "paymentMethod": "visa"}
	var created struct {
		InstanceID string      `json:"instanceId"`
		Instance   apiInstance `json:"instance"`
	}
	st, raw, err := c.do("POST", "/api/components/OrderComponent/instances", map[string]any{"machineName": "Order", "context": orderCtx}, &created)
	if err != nil || st != http.StatusCreated || created.Instance.CurrentState != "Created" {
		t.Fatalf("create order: %d %v %s", st, err, raw)
	}
	order := created.InstanceID
	trigger := func(id, event, want string) {
		t.Helper()
		var ans eventAnswer
		st, raw, err := c.do("POST", "/api/instances/"+id+"/trigger", map[string]any{"event": event}, &ans)
		if err != nil || st != http.StatusOK || ans.Instance.CurrentState != want {
			t.Fatalf("%s on %s: %d %v %s (want state %s)", event, id, st, err, raw, want)
		}
	}
	state := func(id string) (string, apiInstance) {
		var inst apiInstance
		st, raw, err := c.do("GET", "/api/instances/"+id, nil, &inst)
		if err != nil || st != 200 {
			return "", inst
		}
		_ = raw
		return inst.CurrentState, inst
	}

	trigger(order, "SUBMIT", "PendingPayment")
	var payment apiInstance
	waitFor(t, "the payment created in PaymentComponent", func() (bool, string) {
		var list struct {
			Instances []apiInstance `json:"instances"`
		}
		st, raw, err := c.do("GET", "/api/instances?component=PaymentComponent&q="+orderID, nil, &list)
		if err != nil || st != 200 || len(list.Instances) != 1 {
			return false, fmt.Sprint(st, err, string(raw))
		}
		payment = list.Instances[0]
		return true, ""
	})
	for k, v := range orderCtx {
		if fmt.Sprint(payment.Context[k]) != fmt.Sprint(v) {
			t.Errorf("payment context %s = %v, want %v (contextMapping)", k, payment.Context[k], v)
		}
	}
	if payment.MachineName != "Payment" || payment.CurrentState != "Pending" {
		t.Errorf("payment: %s in %s", payment.MachineName, payment.CurrentState)
	}

	trigger(payment.ID, "PROCESS", "Processing")
	waitFor(t, "the payment validated by the Go hook", func() (bool, string) {
		s, _ := state(payment.ID)
		return s == "Validated", s
	})
	trigger(payment.ID, "COMPLETE", "Completed")
	waitFor(t, "the order paid (PAYMENT_CONFIRMED from the payment)", func() (bool, string) {
		s, _ := state(order)
		return s == "Paid", s
	})
	trigger(order, "SHIP", "Shipped")
	trigger(order, "DELIVER", "Delivered")

	// The audit trail, row by row.
	db := b.open(t)
	rows := func(id string) []string {
		t.Helper()
		rs, err := db.Query(`SELECT event_type, coalesce(from_state, ''), to_state, seq, coalesce(source, ''),
			coalesce(source_component_name, ''), component_name FROM fsm_events WHERE instance_id = $1 ORDER BY seq`, id)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []string
		for rs.Next() {
			var typ, from, to, source, srcComp, comp string
			var seq int
			if err := rs.Scan(&typ, &from, &to, &seq, &source, &srcComp, &comp); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%d %s %s %s->%s %s %s", seq, comp, typ, from, to, source, srcComp))
		}
		return out
	}
	wantOrder := []string{
		"0 OrderComponent INSTANCE_CREATED ->Created broker ",
		"1 OrderComponent SUBMIT Created->PendingPayment api ",
		"2 OrderComponent PAYMENT_CONFIRMED PendingPayment->Paid cross_component PaymentComponent",
		"3 OrderComponent SHIP Paid->Shipped api ",
		"4 OrderComponent DELIVER Shipped->Delivered api ",
	}
	wantPayment := []string{
		"0 PaymentComponent INSTANCE_CREATED ->Pending broker OrderComponent",
		"1 PaymentComponent PROCESS Pending->Processing api ",
		"2 PaymentComponent VALIDATE Processing->Validated hook ",
		"3 PaymentComponent COMPLETE Validated->Completed api ",
	}
	for _, x := range []struct {
		what, id string
		want     []string
	}{{"order", order, wantOrder}, {"payment", payment.ID, wantPayment}} {
		got := rows(x.id)
		if strings.Join(got, "\n") != strings.Join(x.want, "\n") {
			t.Errorf("fsm_events of the %s:\n%s\nwant:\n%s", x.what, strings.Join(got, "\n"), strings.Join(x.want, "\n"))
		}
	}

	// Ctrl-C stops every service gracefully.
	stopped = true
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("run-local.sh after Ctrl-C: %v", err)
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("run-local.sh still running 60s after Ctrl-C")
	}
	for _, name := range []string{"dashboard", "runtime-approval", "runtime-approval-2", "runtime-order", "runtime-payment"} {
		b, _ := os.ReadFile(filepath.Join(logDir, name+".log"))
		if !strings.Contains(tailOf(string(b), 5), "stopped") {
			t.Errorf("%s did not stop gracefully:\n%s", name, tailOf(string(b), 10))
		}
	}
}

// waitFor polls cond (every 20 ms, 30 s at most); cond returns whether it holds and what it
// saw, shown on failure.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := faults.Poll(30*time.Second, func() (bool, error) {
		ok, saw := cond()
		last = saw
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: %v; last seen: %s", what, err, last)
	}
}

// freeOffset returns an offset o such that every port+o is free on loopback. The ports stay
// below the kernel's ephemeral range (32768 and up here), where the connections and ":0"
// listeners of the tests running in parallel could take one between this check and the bind.
func freeOffset(t *testing.T, ports ...int) int {
	t.Helper()
	for range 50 {
		o := 10000 + rand.IntN(14000) // 3000..8084 + o stays within 13000..32083
		free := true
		for _, p := range ports {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+o))
			if err != nil {
				free = false
				break
			}
			_ = ln.Close()
		}
		if free {
			return o
		}
	}
	t.Fatal("no free port range")
	return 0
}

func tailOf(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
