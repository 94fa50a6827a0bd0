package faults_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/internal/faults"
)

// startServe starts `xcomponent serve` of testdata/counters.yaml on the store spec.
func startServe(t testing.TB, name, storeSpec string) *faults.Proc {
	t.Helper()
	return faults.Start(t, name, binary, []string{"serve", "--log-format", "json", "--port", "0", "--bind", "127.0.0.1",
		"--store", storeSpec, "--name", name, componentFile}, []string{"DATABASE_URL=", "PORT=", "XCOMPONENT_AUTH_TOKENS="})
}

// post sends a JSON body and decodes a 2xx answer into out; status 0 and err for no answer.
func post(base, path string, body, out any) (int, []byte, error) {
	return postWith(http.DefaultClient, base, path, body, out)
}

func postWith(c *http.Client, base, path string, body, out any) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest("POST", base+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("decode answer: %w", err)
		}
	}
	return resp.StatusCode, raw, nil
}

// createHTTP creates a Counter through the API and returns its id.
func createHTTP(t testing.TB, base string, data map[string]any) string {
	t.Helper()
	var out struct {
		InstanceID string `json:"instanceId"`
		Instance   struct {
			ID string `json:"id"`
		} `json:"instance"`
	}
	st, raw, err := post(base, "/api/components/"+comp+"/instances", map[string]any{"machineName": "Counter", "context": data}, &out)
	if err != nil || st != http.StatusCreated {
		t.Fatalf("create: %d %v %s", st, err, raw)
	}
	if out.Instance.ID != "" {
		return out.Instance.ID
	}
	return out.InstanceID
}

// httpTraffic sends TICKs with unique tokens to instances through an API (serve, or the
// dashboard), one sender per instance sending one event after the other, until stopped;
// every outcome goes to the ledger.
type httpTraffic struct {
	led  *faults.Ledger
	http *http.Client
	base atomic.Pointer[string] // the API's base URL (a restarted dashboard has a new port)
	stop atomic.Bool
	wg   sync.WaitGroup

	acks, failures, unknownOutcome atomic.Int64
	mu                             sync.Mutex
	statuses                       map[int]int
	samples                        map[int]string // status → the first answer's body (0: the transport error)
}

func startHTTPTraffic(led *faults.Ledger, base, prefix string, ids []string) *httpTraffic {
	tr := &httpTraffic{led: led, http: &http.Client{Timeout: 30 * time.Second}, statuses: map[int]int{}, samples: map[int]string{}}
	tr.base.Store(&base)
	for i, id := range ids {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			tr.run(fmt.Sprintf("%s-s%d", prefix, i), id)
		}()
	}
	return tr
}

func (tr *httpTraffic) setBase(base string) { tr.base.Store(&base) }

func (tr *httpTraffic) run(stream, id string) {
	pace := time.NewTicker(20 * time.Millisecond) // after a failure: the server is down, don't spin
	defer pace.Stop()
	for n := 0; !tr.stop.Load(); n++ {
		tok := fmt.Sprintf("%s-n%d", stream, n)
		tr.led.Sent(stream, tok)
		var ans struct {
			Instance struct {
				ID      string `json:"id"`
				Version int64  `json:"version"`
			} `json:"instance"`
		}
		st, raw, err := postWith(tr.http, *tr.base.Load(), "/api/instances/"+id+"/trigger", map[string]any{"event": "TICK", "payload": map[string]any{"tok": tok, "n": n}}, &ans)
		tr.mu.Lock()
		tr.statuses[st]++
		if _, ok := tr.samples[st]; !ok && st != http.StatusOK {
			tr.samples[st] = strings.TrimSpace(string(raw))
			if err != nil {
				tr.samples[st] = err.Error()
			}
		}
		tr.mu.Unlock()
		switch {
		case err != nil && st == 0:
			tr.led.Unanswered(tok)
		case st == http.StatusOK:
			tr.led.Ack(tok, id, ans.Instance.Version)
			tr.acks.Add(1)
			continue
		case st/100 == 4 || faults.SaysNotApplied(string(raw)):
			tr.led.Refused(tok) // judged: it must not be in the store
		default: // a 5xx may leave the outcome unknown ("connection lost during COMMIT, outcome unknown")
			tr.led.Unanswered(tok)
			if strings.Contains(string(raw), "outcome unknown") {
				tr.unknownOutcome.Add(1)
			}
		}
		tr.failures.Add(1)
		<-pace.C
	}
}

// halt stops the senders and waits for them.
func (tr *httpTraffic) halt() {
	tr.stop.Store(true)
	tr.wg.Wait()
	tr.http.CloseIdleConnections() // idle keep-alives would delay a graceful stop
}

// sampleAnswers returns the first answer of each status but 200.
func (tr *httpTraffic) sampleAnswers() map[int]string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[int]string{}
	for k, v := range tr.samples {
		out[k] = v
	}
	return out
}

func (tr *httpTraffic) statusCounts() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return fmt.Sprint(tr.statuses)
}

// waitAcks waits until n more events than now are acknowledged, and returns how long it took.
func (tr *httpTraffic) waitAcks(t testing.TB, n int64, what string) time.Duration {
	t.Helper()
	start, from := time.Now(), tr.acks.Load()
	if err := faults.Poll(waitFor, func() (bool, error) { return tr.acks.Load() >= from+n, nil }); err != nil {
		t.Fatalf("%s: %d events acknowledged (%s): %v", what, tr.acks.Load()-from, tr.statusCounts(), err)
	}
	return time.Since(start)
}
