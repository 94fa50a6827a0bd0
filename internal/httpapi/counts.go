package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
)

// Counter is implemented by backends that count instances per machine, state and status
// (GET /api/counts). Both backends of this module implement it.
type Counter interface {
	// Counts counts the instances of a component. exact is false when only the live
	// (active) instances could be counted (a store that cannot count).
	Counts(ctx context.Context, component string) (counts []store.StatusCount, exact bool, err error)
}

// stateCount is one row of GET /api/counts.
type stateCount struct {
	Component string       `json:"componentName"`
	Machine   string       `json:"machineName"`
	State     string       `json:"state"`
	Status    store.Status `json:"status"`
	Count     int          `json:"count"`
}

// statusTotals sums counts per status.
type statusTotals struct {
	Active    int `json:"active"`
	Completed int `json:"completed"`
	Error     int `json:"error"`
	// Terminated: ended by an operator (Engine.Terminate).
	Terminated int `json:"terminated"`
	All        int `json:"all"`
}

func (t *statusTotals) add(st store.Status, n int) {
	switch st {
	case store.StatusActive:
		t.Active += n
	case store.StatusCompleted:
		t.Completed += n
	case store.StatusError:
		t.Error += n
	case store.StatusTerminated:
		t.Terminated += n
	}
	t.All += n
}

// handleCounts answers the instance counts per machine, state and status of one component
// (?component=C) or of all: exact counts whatever the number of instances (the dashboard's
// counters), with totals per status and per component.
func (s *server) handleCounts(w http.ResponseWriter, r *http.Request) error {
	cb, ok := s.b.(Counter)
	if !ok {
		return &apiError{status: http.StatusNotImplemented, msg: "this backend cannot count instances"}
	}
	var comps []string
	if name := r.URL.Query().Get("component"); name != "" {
		c, err := s.component(name)
		if err != nil {
			return err
		}
		comps = []string{c.Name}
	} else {
		for _, c := range s.b.Components() {
			comps = append(comps, c.Name)
		}
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	rows := []stateCount{}
	var totals statusTotals
	byComp := map[string]*statusTotals{}
	exact := true
	for _, comp := range comps {
		counts, ex, err := cb.Counts(ctx, comp)
		if err != nil {
			return err
		}
		exact = exact && ex
		ct := &statusTotals{}
		byComp[comp] = ct
		for _, c := range counts {
			rows = append(rows, stateCount{Component: comp, Machine: c.Machine, State: c.State, Status: c.Status, Count: c.Count})
			totals.add(c.Status, c.Count)
			ct.add(c.Status, c.Count)
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"counts": rows, "totals": totals, "components": byComp, "exact": exact})
}

// Counts implements Counter: the store's counts, else the live instances of the engine.
func (l *local) Counts(ctx context.Context, comp string) ([]store.StatusCount, bool, error) {
	if c, ok := l.eng.Store().(store.Counter); ok {
		counts, err := c.CountStates(ctx, comp)
		return counts, true, storeErr("count", err)
	}
	var out []store.StatusCount
	for _, c := range l.eng.StateCounts() {
		if c.Component == comp {
			out = append(out, store.StatusCount{Machine: c.Machine, State: c.State, Status: store.StatusActive, Count: c.Count})
		}
	}
	return out, false, nil
}

// ---- business-key search: ?where=key:value ----

// maxWhere bounds the where conditions of one request; maxWherePages the store pages one
// filtered list request reads.
const (
	maxWhere      = 8
	maxWherePages = 20
)

// whereConds reads the where parameters (repeatable, each "path:value", ANDed). A value that
// reads as a number or a boolean also matches its string form: orderId:42 finds 42 and "42".
func whereConds(v url.Values) ([][]store.Cond, error) {
	ws := v["where"]
	if len(ws) == 0 {
		return nil, nil
	}
	if len(ws) > maxWhere {
		return nil, badRequest("at most %d where conditions", maxWhere)
	}
	// alternatives: every combination of the typed and string forms
	alts := [][]store.Cond{nil}
	for _, w := range ws {
		path, val, ok := strings.Cut(w, ":")
		path = strings.TrimSpace(path)
		if !ok || path == "" {
			return nil, badRequest("where %q: want key:value (e.g. orderId:42)", truncate(w, 64))
		}
		if err := checkName("where key", path); err != nil {
			return nil, err
		}
		if len(val) > maxQueryText {
			return nil, badRequest("where value is longer than %d bytes", maxQueryText)
		}
		forms := []any{val}
		if n, err := strconv.ParseFloat(val, 64); err == nil {
			forms = append(forms, n)
		} else if b, err := strconv.ParseBool(val); err == nil && (val == "true" || val == "false") {
			forms = append(forms, b)
		}
		var next [][]store.Cond
		for _, a := range alts {
			for _, f := range forms {
				next = append(next, append(append([]store.Cond(nil), a...), store.Cond{Path: path, Op: store.OpEq, Value: f}))
			}
		}
		alts = next
	}
	return alts, nil
}

// matchesWhere reports whether an instance's data satisfy one of the alternatives.
func matchesWhere(alts [][]store.Cond, data map[string]any) bool {
	for _, conds := range alts {
		if store.MatchData(conds, data) {
			return true
		}
	}
	return false
}

// searchWhere lists the instances matching q and the where alternatives: it reads store
// pages of maxLimit (narrowed by the first value as text when q has no text) until limit
// matches or maxWherePages pages, and returns the cursor to go on from ("" at the end); the
// answer may hold more or fewer than limit instances (every match of the pages read).
func (s *server) searchWhere(ctx context.Context, q store.Query, alts [][]store.Cond, values []string) ([]xc.Instance, string, error) {
	limit := q.Limit
	if q.Text == "" && len(values) > 0 && len(values[0]) >= 2 && plainText(values[0]) {
		q.Text = values[0]
		if _, err := strconv.ParseFloat(values[0], 64); err != nil && values[0] != "true" && values[0] != "false" {
			q.Text = `"` + values[0] + `"` // a string value: as a whole JSON string, far more selective
		}
	}
	q.Limit = maxLimit // read the store in large pages: the filter keeps few
	var out []xc.Instance
	for range maxWherePages {
		ins, next, err := s.b.Search(ctx, q)
		if err != nil {
			return nil, "", err
		}
		for _, in := range ins {
			if matchesWhere(alts, in.Context) {
				out = append(out, in)
			}
		}
		if next == "" || len(out) >= limit {
			return out, next, nil
		}
		q.Cursor = next
	}
	return out, q.Cursor, nil
}

// whereValues are the values of the where parameters, for the text prefilter.
func whereValues(v url.Values) []string {
	var out []string
	for _, w := range v["where"] {
		if _, val, ok := strings.Cut(w, ":"); ok {
			out = append(out, val)
		}
	}
	return out
}

// plainText reports whether v reads the same in JSON text (a safe text prefilter).
func plainText(v string) bool {
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" _.-@:/+", r)) {
			return false
		}
	}
	return true
}

// handleSession tells the page who it is talking as: the actor recorded with its commands,
// its role (viewer or operator) and whether auth is on, so that it disables what the role
// cannot do.
func (s *server) handleSession(w http.ResponseWriter, r *http.Request) error {
	who := anonymous
	if ri := info(w); ri.authd {
		who = ri.who
	}
	return writeJSON(w, http.StatusOK, map[string]any{"actor": who.actor, "role": who.role, "auth": !s.auth.open(),
		"canWrite": who.role == RoleOperator})
}
