package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
)

// maxBulkTargets bounds the instances one POST /api/events reaches.
const maxBulkTargets = 1000

// bulkBody is the body of POST /api/events: an event for the instances listed, or for the
// active instances of a component whose data match where (business keys), optionally of
// one machine and state.
type bulkBody struct {
	Component   string          `json:"component"`
	InstanceIDs []string        `json:"instanceIds"`
	Where       json.RawMessage `json:"where"`
	MachineName string          `json:"machineName"`
	State       string          `json:"state"`
	eventBody
}

// bulkResult is the outcome of the event on one instance.
type bulkResult struct {
	InstanceID    string `json:"instanceId"`
	OK            bool   `json:"ok"`
	PreviousState string `json:"previousState,omitempty"`
	NewState      string `json:"newState,omitempty"`
	Status        int    `json:"status"`
	Error         string `json:"error,omitempty"`
	// Replayed: the event was applied to this instance by an earlier request with the same
	// Idempotency-Key; nothing was done again.
	Replayed bool `json:"replayed,omitempty"`
}

// handleBulkEvents sends one event to many instances, one by one, and reports each outcome:
// 200 with {matched, processed, results} even when some were refused.
func (s *server) handleBulkEvents(w http.ResponseWriter, r *http.Request) error {
	var body bulkBody
	if err := s.decode(w, r, &body, false); err != nil {
		return err
	}
	ev, err := body.event()
	if err != nil {
		return err
	}
	ev.Actor, ev.Source = actor(w), xc.SourceAPI
	key, err := idempotencyKey(w, r)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	var ids []string
	switch {
	case len(body.InstanceIDs) > 0 && len(body.Where) > 0:
		return badRequest("give instanceIds or where, not both")
	case len(body.InstanceIDs) > 0:
		if len(body.InstanceIDs) > maxBulkTargets {
			return badRequest("at most %d instanceIds", maxBulkTargets)
		}
		for _, id := range body.InstanceIDs {
			if err := checkID(id); err != nil {
				return err
			}
		}
		ids = body.InstanceIDs
		if body.Component != "" {
			if _, err := s.component(body.Component); err != nil {
				return err
			}
		}
	case len(body.Where) > 0:
		c, err := s.component(body.Component)
		if err != nil {
			return err
		}
		v, err := whereParam(body.Where)
		if err != nil {
			return err
		}
		alts, err := whereConds(v)
		if err != nil {
			return err
		}
		q := store.Query{Component: c.Name, Machine: body.MachineName, State: body.State, Status: store.StatusActive, Limit: maxLimit}
		for {
			ins, next, err := s.searchWhere(ctx, q, alts, whereValues(v))
			if err != nil {
				return err
			}
			for _, in := range ins {
				ids = append(ids, in.ID)
			}
			if len(ids) > maxBulkTargets {
				return badRequest("more than %d instances match: narrow where", maxBulkTargets)
			}
			if next == "" {
				break
			}
			q.Cursor = next
		}
	default:
		return badRequest("give instanceIds or where (with component)")
	}
	out := map[string]any{"matched": len(ids)}
	results := make([]bulkResult, 0, len(ids))
	processed := 0
	for _, id := range ids {
		evi := ev
		if key != nil {
			evi.ID = key.id("bulk", id) // one event id per instance reached
		}
		res, err := s.b.Send(ctx, body.Component, id, evi)
		replay := false
		if err != nil && key != nil {
			if res, err = s.replayEvent(ctx, body.Component, id, evi, err); err == nil {
				replay = true
			}
		}
		br := bulkResult{InstanceID: id, OK: err == nil, Status: http.StatusOK, Replayed: replay}
		if err != nil {
			br.Status, br.Error = statusOf(err), err.Error()
			if br.Status >= 500 {
				br.Error = http.StatusText(br.Status)
			}
		} else {
			processed++
			br.PreviousState, br.NewState = res.PreviousState, res.NewState
		}
		results = append(results, br)
		if ctx.Err() != nil {
			break // the request timed out: the rest was not sent
		}
	}
	out["processed"], out["results"] = processed, results
	return writeJSON(w, http.StatusOK, out)
}

// whereParam reads where as "k:v", ["k:v", …] or {"k": v, …} into query values.
func whereParam(raw json.RawMessage) (url.Values, error) {
	v := url.Values{}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		v.Add("where", one)
		return v, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		v["where"] = many
		return v, nil
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, badRequest(`where: want "key:value", a list of them, or an object {"key": value}`)
	}
	for k, val := range obj {
		switch x := val.(type) {
		case string:
			v.Add("where", k+":"+x)
		default:
			b, _ := json.Marshal(x)
			v.Add("where", k+":"+string(b))
		}
	}
	return v, nil
}
