package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// apiInstance is the part of the API's instance view the tests read.
type apiInstance struct {
	ID              string         `json:"id"`
	ComponentName   string         `json:"componentName"`
	MachineName     string         `json:"machineName"`
	CurrentState    string         `json:"currentState"`
	Status          string         `json:"status"`
	Version         int64          `json:"version"`
	Context         map[string]any `json:"context"`
	PendingTimeouts []struct {
		Event string `json:"event"`
		DueAt int64  `json:"dueAt"`
	} `json:"pendingTimeouts"`
}

// eventAnswer is the 200 answer of POST …/events.
type eventAnswer struct {
	Instance      apiInstance `json:"instance"`
	PreviousState string      `json:"previousState"`
	NewState      string      `json:"newState"`
	EventID       string      `json:"eventId"`
}

// client talks to one server. Each server gets its own (fresh connections).
type client struct {
	base string
	http *http.Client
}

func newClient(base string) *client {
	tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 30 * time.Second}
	return &client{base: base, http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// do sends a JSON request and decodes a JSON answer into out when the status is 2xx. A
// transport error (no HTTP answer at all) is returned as err with status 0.
func (c *client) do(method, path string, body, out any) (status int, raw []byte, err error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err = io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("decode answer: %w: %s", err, raw)
		}
	}
	return resp.StatusCode, raw, nil
}

// create creates an instance and returns its id.
func (c *client) create(t testing.TB, machine string, ctx map[string]any) apiInstance {
	t.Helper()
	var out struct {
		Instance apiInstance `json:"instance"`
	}
	st, raw, err := c.do("POST", "/api/components/Durable/instances", map[string]any{"machineName": machine, "context": ctx}, &out)
	if err != nil || st != http.StatusCreated {
		t.Fatalf("create %s: %d %v %s", machine, st, err, raw)
	}
	return out.Instance
}

// send posts an event; see do for status and err.
func (c *client) send(id, typ string, payload map[string]any) (eventAnswer, int, []byte, error) {
	var out eventAnswer
	st, raw, err := c.do("POST", "/api/components/Durable/instances/"+id+"/events", map[string]any{"type": typ, "payload": payload}, &out)
	return out, st, raw, err
}

// get reads an instance through the API.
func (c *client) get(t testing.TB, id string) apiInstance {
	t.Helper()
	var out apiInstance
	st, raw, err := c.do("GET", "/api/instances/"+id, nil, &out)
	if err != nil || st != http.StatusOK {
		t.Fatalf("get %s: %d %v %s", id, st, err, raw)
	}
	return out
}
