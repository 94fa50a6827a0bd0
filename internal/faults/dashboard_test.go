package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/bus/rabbitmq/rmqtest"
	"github.com/xcomponent/xcomponent/internal/faults"
	"github.com/xcomponent/xcomponent/store/postgres/pgtest"
)

func startDashboard(t testing.TB, name, brokerURL, dsn string) *faults.Proc {
	t.Helper()
	env := []string{"BROKER_URL=" + brokerURL, "DATABASE_URL=" + dsn, "PORT=" + strconv.Itoa(faults.FreePort(t)),
		"RUNTIME_LOST_AFTER=5s", "XCOMPONENT_AUTH_TOKENS="}
	return faults.Start(t, name, binary, []string{"dashboard", "--log-format", "json"}, env)
}

// waitRuntimesUp waits until the dashboard shows n runtimes of the component up (it learns them
// from their announces).
func waitRuntimesUp(t testing.TB, base string, n int) {
	t.Helper()
	err := faults.Poll(waitFor, func() (bool, error) {
		resp, err := http.Get(base + "/api/runtimes")
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		var out struct {
			Runtimes []struct {
				ComponentName string `json:"componentName"`
				Status        string `json:"status"`
			} `json:"runtimes"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
			return false, nil
		}
		up := 0
		for _, r := range out.Runtimes {
			if r.ComponentName == comp && r.Status == "up" {
				up++
			}
		}
		return up >= n, nil
	})
	if err != nil {
		t.Fatalf("dashboard %s: %d runtimes of %s up: %v", base, n, comp, err)
	}
}

// listed returns the versions of the instances the API lists.
func listed(base string) (map[string]int64, error) {
	resp, err := http.Get(base + "/api/instances?limit=1000")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/instances: %d %s", resp.StatusCode, raw)
	}
	var out struct {
		Instances []struct {
			ID      string `json:"id"`
			Version int64  `json:"version"`
		} `json:"instances"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("GET /api/instances: %w", err)
	}
	m := map[string]int64{}
	for _, in := range out.Instances {
		m[in.ID] = in.Version
	}
	return m, nil
}

// TestDashboardRestart: `xcomponent dashboard` drives two `xcomponent runtime` processes
// (RabbitMQ, PostgreSQL) under a stream of events sent through its API, and is killed with
// SIGKILL mid-stream, then started again. Requests in flight get no answer (their commands may
// still be applied by a runtime: at most once); after the restart the dashboard lists every
// instance at the version the database has, and the stream goes on through it. Every
// acknowledged event is stored once, with the version its answer gave. Time to recover: from
// the new process's start to the first event acknowledged through it.
func TestDashboardRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection: -short")
	}
	t.Parallel()
	_, url := rmqtest.NewVhost(t)
	dsn := pgtest.NewDatabase(t)
	a := startRuntime(t, "dash-rt-a", url, dsn)
	b := startRuntime(t, "dash-rt-b", url, dsn)
	d := startDashboard(t, "dashboard-0", url, dsn)
	waitRuntimesUp(t, d.URL, 2)
	var ids []string
	for i := range 6 {
		ids = append(ids, createHTTP(t, d.URL, map[string]any{"key": fmt.Sprint("dash-", i)}))
	}
	led := faults.NewLedger()
	tr := startHTTPTraffic(led, d.URL, "dash", ids)
	tr.waitAcks(t, 120, "through the first dashboard")
	d.Kill()
	d2 := startDashboard(t, "dashboard-1", url, dsn)
	tr.setBase(d2.URL)
	tr.waitAcks(t, 1, "through the restarted dashboard")
	first := time.Since(d2.Started)
	tr.waitAcks(t, 120, "through the restarted dashboard")
	tr.halt()
	// The restarted dashboard's view converges on the database.
	db, err := faults.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := faults.Poll(waitFor, func() (bool, error) {
		st, err := faults.Read(context.Background(), db)
		if err != nil {
			return false, err
		}
		view, err := listed(d2.URL)
		if err != nil {
			return false, nil
		}
		for _, id := range ids {
			if view[id] != st.Snapshots[id].Version {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		view, _ := listed(d2.URL)
		t.Fatalf("the restarted dashboard's view %v never matched the database: %v", view, err)
	}
	d2.Stop()
	a.Stop()
	b.Stop()
	st, err := faults.Read(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	v := faults.Judge(led, st, faults.ByToken)
	faults.Check(t, v)
	row := faults.RowOf(faults.ScenarioDashboardRestart, "dashboard + 2 runtimes, PostgreSQL", v, st)
	row.Recovery, row.RecoveryFrom = first, "new process started → first event acknowledged through it"
	row.Notes = fmt.Sprintf("SIGKILL mid-stream, 6 concurrent senders; ready in %v; its view then matched the database; answers %s",
		d2.Ready.Round(time.Millisecond), tr.statusCounts())
	faults.Record(t, row)
}
