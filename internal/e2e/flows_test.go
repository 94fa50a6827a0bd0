package e2e

import (
	"context"
	"fmt"
	"github.com/xcomponent/xcomponent/internal/faults"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
)

// buildExampleRuntime builds the distributed example's Go runtime (its hooks validate card
// payments) into the test's temporary directory.
func buildExampleRuntime(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "example-runtime")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/xcomponent/xcomponent/examples/distributed/runtime")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build the example runtime: %v", err)
	}
	return bin
}

// startExampleRuntime starts the example runtime on component file comp (its logs are text:
// readiness is its /readyz on the port it is given).
func startExampleRuntime(t *testing.T, bin, name, brokerURL, dsn, comp string) *server {
	t.Helper()
	port := strconv.Itoa(faults.FreePort(t))
	env := []string{"BROKER_URL=" + brokerURL, "DATABASE_URL=" + dsn, "PORT=" + port,
		"COMPONENT_FILE=" + filepath.Join("..", "..", "examples", "distributed", comp), "RUNTIME_NAME=" + name,
		"CREATE_DEMO_INSTANCE=false", "HEARTBEAT_INTERVAL=1s", "PAYMENT_VALIDATION_DELAY=50ms"}
	return faults.StartAt(t, name, "http://127.0.0.1:"+port, bin, nil, env)
}

// TestDashboardOrderPaymentFlowsWithKills: 20 order/payment flows of the distributed example in
// parallel, driven only through `xcomponent dashboard`'s API, against two runtimes per
// component; one runtime of each component is killed (SIGKILL) mid-run. Every flow completes
// (order Delivered, payment Completed), each order has one payment, no transition is recorded
// twice, and the runtimes panel shows the two live runtimes up and the killed ones lost.
func TestDashboardOrderPaymentFlowsWithKills(t *testing.T) {
	if testing.Short() {
		t.Skip("long end-to-end test")
	}
	_, url := rmqtest.NewVhost(t)
	dsn := pgtest.NewDatabase(t)
	bin := buildExampleRuntime(t)
	orders := []*server{
		startExampleRuntime(t, bin, "runtime-order", url, dsn, "order.yaml"),
		startExampleRuntime(t, bin, "runtime-order-2", url, dsn, "order.yaml"),
	}
	payments := []*server{
		startExampleRuntime(t, bin, "runtime-payment", url, dsn, "payment.yaml"),
		startExampleRuntime(t, bin, "runtime-payment-2", url, dsn, "payment.yaml"),
	}
	d := startDashboardProc(t, url, dsn, 3*time.Second)
	c := newClient(d.URL)
	defer c.close()
	if err := faults.Poll(30*time.Second, func() (bool, error) {
		n := 0
		for _, r := range runtimesByName(t, c) {
			if r.Status == "up" {
				n++
			}
		}
		return n == 4, nil
	}); err != nil {
		t.Fatalf("four runtimes up: %v (%v)", err, runtimesByName(t, c))
	}

	// call sends a command; a 5xx during the kills is retried like a client would (a 504 only
	// says no answer came in time; the retry then finds the new state and is refused, 409).
	var retries atomic.Int32
	defer func() { t.Logf("client retries after a 5xx: %d", retries.Load()) }()
	call := func(path string, body map[string]any, out any) (int, string) {
		for attempt := 0; ; attempt++ {
			st, raw, err := c.do("POST", path, body, out)
			if err == nil && (st < 500 || attempt == 5) {
				return st, string(raw)
			}
			retries.Add(1)
			t.Logf("retrying %s after %d %v %s", path, st, err, raw)
			time.Sleep(200 * time.Millisecond) // back-off between client retries, not a synchronisation
		}
	}
	find := func(comp, q, state string) (apiInstance, error) {
		var found apiInstance
		err := faults.Poll(60*time.Second, func() (bool, error) {
			var out struct {
				Instances []apiInstance `json:"instances"`
			}
			st, _, err := c.do("GET", "/api/instances?component="+comp+"&q="+q, nil, &out)
			if err != nil || st != http.StatusOK {
				return false, nil
			}
			for _, in := range out.Instances {
				if state == "" || in.CurrentState == state {
					found = in
					return true, nil
				}
			}
			return false, nil
		})
		return found, err
	}
	// step sends event to id and accepts a 409 when the instance is already past it (a retried
	// command that was applied before its answer was lost).
	step := func(id, event, want string) error {
		var out eventAnswer
		st, raw := call("/api/instances/"+id+"/trigger", map[string]any{"event": event}, &out)
		switch {
		case st == http.StatusOK && out.NewState == want:
			return nil
		case st == http.StatusConflict:
			var in apiInstance
			if s, _, err := c.do("GET", "/api/instances/"+id, nil, &in); err == nil && s == 200 && in.CurrentState == want {
				return nil
			}
		}
		return fmt.Errorf("%s on %s: %d %s", event, id, st, raw)
	}

	const flows = 20
	var (
		wg        sync.WaitGroup
		submitted atomic.Int32
		killed    = make(chan struct{})
		errs      = make(chan error, flows)
		orderIDs  = make([]string, flows)
	)
	for i := range flows {
		orderIDs[i] = "ORD-" + uuid.NewString()[:8]
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := func() error {
				ref := orderIDs[i]
				var created struct {
					InstanceID string `json:"instanceId"`
				}
				st, raw := call("/api/components/OrderComponent/instances", map[string]any{"context": map[string]any{
					"orderId": ref, "customerId": "CUST-" + strconv.Itoa(i), "amount": 10 + i, "paymentMethod": "visa"}}, &created)
				if st != http.StatusCreated {
					return fmt.Errorf("create order %s: %d %s", ref, st, raw)
				}
				order := created.InstanceID
				if err := step(order, "SUBMIT", "PendingPayment"); err != nil {
					return err
				}
				if submitted.Add(1) == flows/4 {
					close(killed) // a quarter of the flows are in: kill now
				}
				pay, err := find("PaymentComponent", ref, "Pending")
				if err != nil {
					return fmt.Errorf("payment of %s: %v", ref, err)
				}
				if pay.Context["orderId"] != ref || pay.Context["paymentMethod"] != "visa" {
					return fmt.Errorf("payment of %s: context %v", ref, pay.Context)
				}
				if err := step(pay.ID, "PROCESS", "Processing"); err != nil {
					return err
				}
				if _, err := find("PaymentComponent", ref, "Validated"); err != nil {
					return fmt.Errorf("payment of %s not validated by the hook: %v", ref, err)
				}
				if err := step(pay.ID, "COMPLETE", "Completed"); err != nil {
					return err
				}
				if _, err := find("OrderComponent", ref, "Paid"); err != nil {
					return fmt.Errorf("order %s not paid: %v", ref, err)
				}
				if err := step(order, "SHIP", "Shipped"); err != nil {
					return err
				}
				return step(order, "DELIVER", "Delivered")
			}()
			if err != nil {
				errs <- err
			}
		}(i)
	}
	select {
	case <-killed:
		orders[0].Kill()
		payments[0].Kill()
	case <-time.After(2 * time.Minute):
		t.Fatal("flows did not start")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	var n int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Payment'`).Scan(&n); err != nil || n != flows {
		t.Errorf("payments: %d (%v), want one per order (%d)", n, err, flows)
	}
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM (SELECT context->>'orderId' FROM fsm_snapshots
		WHERE machine_name = 'Payment' GROUP BY 1 HAVING count(*) > 1) x`).Scan(&n); err != nil || n != 0 {
		t.Errorf("orders with more than one payment: %d (%v)", n, err)
	}
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM (SELECT instance_id, event_type, from_state, to_state
		FROM fsm_events GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) x`).Scan(&n); err != nil || n != 0 {
		t.Errorf("transitions recorded twice: %d (%v)", n, err)
	}
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM fsm_snapshots WHERE machine_name = 'Order' AND current_state = 'Delivered'`).Scan(&n); err != nil || n != flows {
		t.Errorf("delivered orders: %d (%v), want %d", n, err, flows)
	}
	if err := faults.Poll(30*time.Second, func() (bool, error) {
		rts := runtimesByName(t, c)
		return rts["runtime-order"].Status == "lost" && rts["runtime-payment"].Status == "lost" &&
			rts["runtime-order-2"].Status == "up" && rts["runtime-payment-2"].Status == "up", nil
	}); err != nil {
		t.Errorf("runtimes panel: %v", runtimesByName(t, c))
	}
}
