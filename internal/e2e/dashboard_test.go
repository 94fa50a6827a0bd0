package e2e

import (
	"github.com/xcomponent/xcomponent/internal/faults"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
)

// startDashboardProc starts `xcomponent dashboard` on the vhost and database, with runtimes
// shown as lost after lostAfter of silence, and waits for its /readyz.
func startDashboardProc(t testing.TB, brokerURL, dsn string, lostAfter time.Duration) *server {
	t.Helper()
	env := []string{"BROKER_URL=" + brokerURL, "DATABASE_URL=" + dsn, "PORT=" + strconv.Itoa(faults.FreePort(t)),
		"RUNTIME_LOST_AFTER=" + lostAfter.String(), "XCOMPONENT_AUTH_TOKENS="}
	return startProcess(t, "dashboard", binary, []string{"dashboard", "--log-format", "json"}, env)
}

type runtimeRow struct {
	RuntimeName   string `json:"runtimeName"`
	ComponentName string `json:"componentName"`
	Host          string `json:"host"`
	LastSeen      int64  `json:"lastSeen"`
	Status        string `json:"status"`
}

func runtimesByName(t *testing.T, c *client) map[string]runtimeRow {
	t.Helper()
	var out struct {
		Runtimes []runtimeRow `json:"runtimes"`
	}
	st, raw, err := c.do("GET", "/api/runtimes", nil, &out)
	if err != nil || st != http.StatusOK {
		t.Fatalf("GET /api/runtimes: %d %v %s", st, err, raw)
	}
	m := map[string]runtimeRow{}
	for _, r := range out.Runtimes {
		m[r.RuntimeName] = r
	}
	return m
}

// TestDashboardProcessDrivesRuntimes: `xcomponent dashboard` and two `xcomponent runtime`
// processes of one component on RabbitMQ and PostgreSQL. Through the dashboard's API: both
// runtimes listed up, create → 201 with the state, trigger → 200, refused → 409, unknown
// component → 404; one runtime killed (SIGKILL) is shown as lost once silent for
// RUNTIME_LOST_AFTER while the instances stay usable through the other; with no runtime left,
// 503.
func TestDashboardProcessDrivesRuntimes(t *testing.T) {
	_, url := rmqtest.NewVhost(t)
	dsn := pgtest.NewDatabase(t)
	a := startRuntimeProc(t, "runtime-approval", url, dsn, approvalFile)
	b := startRuntimeProc(t, "runtime-approval-2", url, dsn, approvalFile)
	d := startDashboardProc(t, url, dsn, 3*time.Second)
	c := newClient(d.URL)
	defer c.close()

	if err := faults.Poll(30*time.Second, func() (bool, error) {
		rts := runtimesByName(t, c)
		return rts["runtime-approval"].Status == "up" && rts["runtime-approval-2"].Status == "up", nil
	}); err != nil {
		t.Fatalf("both runtimes up: %v (%v)", err, runtimesByName(t, c))
	}

	create := func(amount int) string {
		t.Helper()
		var out struct {
			InstanceID string      `json:"instanceId"`
			Instance   apiInstance `json:"instance"`
		}
		st, raw, err := c.do("POST", "/api/components/ApprovalWorkflow/instances",
			map[string]any{"context": map[string]any{"requester": "ada", "item": "laptop", "amount": amount}}, &out)
		if err != nil || st != http.StatusCreated || out.Instance.CurrentState != "Draft" || out.InstanceID == "" {
			t.Fatalf("create: %d %v %s", st, err, raw)
		}
		return out.InstanceID
	}
	send := func(id, event string, want int) eventAnswer {
		t.Helper()
		var out eventAnswer
		st, raw, err := c.do("POST", "/api/instances/"+id+"/trigger", map[string]any{"event": event}, &out)
		if err != nil || st != want {
			t.Fatalf("%s on %s: %d %v %s, want %d", event, id, st, err, raw, want)
		}
		return out
	}
	var ids []string
	for i := range 4 {
		ids = append(ids, create(100+i))
	}
	for _, id := range ids {
		if got := send(id, "SUBMIT", http.StatusOK); got.NewState != "ManagerReview" || got.PreviousState != "Draft" {
			t.Fatalf("SUBMIT: %+v", got)
		}
	}
	send(ids[0], "SUBMIT", http.StatusConflict)
	if st, raw, _ := c.do("POST", "/api/components/Nope/instances", map[string]any{}, nil); st != http.StatusNotFound {
		t.Fatalf("unknown component: %d %s", st, raw)
	}

	// SIGKILL: no shutdown announce; the dashboard notices the silence.
	a.Kill()
	if err := faults.Poll(30*time.Second, func() (bool, error) {
		return runtimesByName(t, c)["runtime-approval"].Status == "lost", nil
	}); err != nil {
		t.Fatalf("killed runtime shown as lost: %v (%v)", err, runtimesByName(t, c))
	}
	if got := runtimesByName(t, c)["runtime-approval-2"]; got.Status != "up" {
		t.Fatalf("the other runtime: %+v, want up", got)
	}
	// Its instances stay usable through the other runtime.
	for _, id := range ids[1:] {
		if got := send(id, "APPROVE", http.StatusOK); got.NewState != "Approved" {
			t.Fatalf("APPROVE after the kill: %+v", got)
		}
	}
	create(7)

	b.Stop()
	if err := faults.Poll(30*time.Second, func() (bool, error) {
		return runtimesByName(t, c)["runtime-approval-2"].Status == "stopped", nil
	}); err != nil {
		t.Fatalf("stopped runtime shown as stopped: %v", err)
	}
	if st, raw, _ := c.do("POST", "/api/components/ApprovalWorkflow/instances",
		map[string]any{"context": map[string]any{"requester": "ada", "item": "laptop", "amount": 5}}, nil); st != http.StatusServiceUnavailable {
		t.Fatalf("create without runtime: %d %s, want 503", st, raw)
	}
	d.Stop()
}
