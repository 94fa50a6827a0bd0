package component

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func load(t *testing.T, name string) *Component {
	t.Helper()
	c, err := LoadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("LoadFile(%s): %v", name, err)
	}
	return c
}

func TestFixturesLoadWithoutWarnings(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		if filepath.Base(f) == "unknown_keys.yaml" {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			c := load(t, filepath.Base(f))
			for _, w := range c.Warnings {
				t.Errorf("unexpected warning: %s", w)
			}
		})
	}
}

func TestApprovalWorkflow(t *testing.T) {
	c := load(t, "approval.yaml")
	if c.Name != "ApprovalWorkflow" || c.Version != "1.0.0" {
		t.Errorf("name/version = %q/%q", c.Name, c.Version)
	}
	if c.EntryMachine != "ExpenseRequest" || c.EntryMachineMode != EntryMultiple || c.AutoCreateEntryPoint {
		t.Errorf("entry = %q %q auto=%v, want ExpenseRequest multiple false", c.EntryMachine, c.EntryMachineMode, c.AutoCreateEntryPoint)
	}
	if c.Description != "Expense requests approved by a manager, a director above 5000 EUR, then finance" {
		t.Errorf("description = %v", c.Description)
	}
	if md, ok := c.Metadata.(map[string]any); !ok || md["owner"] != "back-office" {
		t.Errorf("metadata = %#v", c.Metadata)
	}
	if lay, ok := c.Layout.(map[string]any); !ok || lay["algorithm"] != "hierarchical" {
		t.Errorf("layout = %#v", c.Layout)
	}
	if c.Pos != (Pos{File: "testdata/approval.yaml", Line: 2, Col: 1}) {
		t.Errorf("component pos = %+v", c.Pos)
	}

	m := c.Machine("ExpenseRequest")
	if m == nil {
		t.Fatal("machine ExpenseRequest not indexed")
	}
	if m.PublicMemberType != "ExpenseRequest" || m.InitialState != "Draft" || m.Description != "One expense request" {
		t.Errorf("machine = %+v", m)
	}
	if m.Pos.Line != 16 || m.Pos.Col != 5 {
		t.Errorf("machine pos = %+v, want 16:5", m.Pos)
	}
	wantOrder := []string{"requestId", "employeeName", "amount", "urgent", "category", "currency", "attachments"}
	if !reflect.DeepEqual(m.SchemaOrder, wantOrder) {
		t.Errorf("SchemaOrder = %v, want %v", m.SchemaOrder, wantOrder)
	}
	amount := m.ContextSchema["amount"]
	if amount.Type != "number" || !amount.Required || *amount.Min != 1 || *amount.Max != 100000 ||
		amount.Placeholder != "1000" || amount.Label != "Amount (EUR)" || amount.Description != "Expense amount in euros" {
		t.Errorf("amount field = %+v", amount)
	}
	if got := m.ContextSchema["category"].Options; len(got) != 3 || got[1] != (SchemaOption{Value: "equipment", Label: "Equipment"}) {
		t.Errorf("category options = %+v", got)
	}
	if got := m.ContextSchema["currency"].Options; !reflect.DeepEqual(got, []SchemaOption{{"EUR", "EUR"}, {"USD", "USD"}}) {
		t.Errorf("currency options = %+v", got)
	}
	if f := m.ContextSchema["urgent"]; f.Type != "boolean" || f.Default != false {
		t.Errorf("urgent = %+v", f)
	}
	if f := m.ContextSchema["requestId"]; f.Pattern != "^EXP-[0-9]+$" || f.re == nil {
		t.Errorf("requestId pattern = %q", f.Pattern)
	}

	draft := m.State("Draft")
	if draft.Type != StateEntry {
		t.Errorf("Draft type = %q", draft.Type)
	}
	pm := m.State("PendingManagerApproval")
	if pm.Type != StateRegular || pm.OnEntry != "notifyManager" || pm.OnExit != "clearManagerReminder" {
		t.Errorf("PendingManagerApproval = %+v", pm)
	}
	if !m.State("Expired").Terminal() || !m.State("Approved").Terminal() || pm.Terminal() {
		t.Error("Terminal() wrong")
	}

	submit := m.Candidates("Draft", "SUBMIT")
	if len(submit) != 1 || submit[0].Type != Triggerable || submit[0].TriggeredMethod != "validateRequest" ||
		submit[0].Description != "Submit the request" || !submit[0].ResetOnTransition {
		t.Errorf("SUBMIT = %+v", submit)
	}
	timeout := m.Candidates("PendingManagerApproval", "APPROVAL_TIMEOUT")[0]
	if timeout.Type != Timeout || timeout.TimeoutMs != 7*24*3600*1000 || timeout.ResetOnTransition {
		t.Errorf("timeout = %+v", timeout)
	}
	if timed := pm.Timed; len(timed) != 1 || timed[0] != timeout {
		t.Errorf("PendingManagerApproval.Timed = %v", timed)
	}
	if timed := m.State("PendingFinanceReview").Timed; len(timed) != 1 || timed[0].Type != Auto || timed[0].TimeoutMs != 86400000 {
		t.Errorf("PendingFinanceReview.Timed = %v", timed)
	}
	route := m.Candidates("ManagerApproved", "ROUTE")
	if len(route) != 2 || route[0].Guards[0].Expression != "context.amount > 5000" || route[1].Guards[0].Expression != "context.amount <= 5000" {
		t.Fatalf("ROUTE = %+v", route)
	}
	if route[0].Guards[0].Pos != (Pos{"testdata/approval.yaml", 116, 23}) || route[1].Guards[0].Pos != (Pos{"testdata/approval.yaml", 120, 16}) {
		t.Errorf("guard positions = %+v %+v", route[0].Guards[0].Pos, route[1].Guards[0].Pos)
	}
	decide := m.Candidates("PendingDirectorApproval", "DIRECTOR_DECIDE")
	if len(decide) != 2 || len(decide[0].Guards) != 2 || len(decide[1].Guards) != 1 {
		t.Errorf("DIRECTOR_DECIDE guards = %+v", decide)
	}
	for i, tr := range m.Transitions {
		if tr.Index != i {
			t.Errorf("transition %d has Index %d", i, tr.Index)
		}
	}
	if len(m.From("PendingFinanceReview")) != 3 || len(m.TransitionsOn("DIRECTOR_DECIDE")) != 2 {
		t.Error("From / TransitionsOn wrong")
	}
}

func TestGuardsOfLoadedTransitions(t *testing.T) {
	m := load(t, "approval.yaml").Machine("ExpenseRequest")
	route := m.Candidates("ManagerApproved", "ROUTE")
	for _, tc := range []struct {
		amount   any
		director bool
	}{{6000, true}, {5000.0, false}, {int64(5001), true}, {nil, false}} {
		data := map[string]any{"amount": tc.amount}
		hi, err1 := route[0].GuardsPass(data, "ROUTE", nil)
		lo, err2 := route[1].GuardsPass(data, "ROUTE", nil)
		if err1 != nil || err2 != nil {
			t.Fatalf("amount %v: errors %v %v", tc.amount, err1, err2)
		}
		if hi != tc.director || (tc.amount != nil && lo == tc.director) {
			t.Errorf("amount %v: director=%v finance=%v", tc.amount, hi, lo)
		}
	}
	decide := m.Candidates("PendingDirectorApproval", "DIRECTOR_DECIDE")
	ok, err := decide[0].GuardsPass(map[string]any{"urgent": true}, "DIRECTOR_DECIDE", map[string]any{"decision": "approve", "override": true})
	if err != nil || !ok {
		t.Errorf("approve with override = %v %v", ok, err)
	}
	ok, err = decide[0].GuardsPass(map[string]any{"urgent": true}, "DIRECTOR_DECIDE", map[string]any{"decision": "approve"})
	if err != nil || ok {
		t.Errorf("approve urgent without override = %v %v", ok, err)
	}
	ok, err = decide[1].GuardsPass(nil, "DIRECTOR_DECIDE", map[string]any{"decision": "reject"})
	if err != nil || !ok {
		t.Errorf("reject = %v %v", ok, err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), "min.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.EntryMachineMode != EntryMultiple || c.AutoCreateEntryPoint {
		t.Errorf("no entryMachine: mode %q auto %v, want multiple false", c.EntryMachineMode, c.AutoCreateEntryPoint)
	}
	m := c.StateMachines[0]
	if m.States[0].Type != StateRegular {
		t.Errorf("state type default = %q", m.States[0].Type)
	}
	tr := m.Transitions[0]
	if tr.Type != Regular || !tr.ResetOnTransition || tr.Guards != nil || tr.NotifyParent != nil {
		t.Errorf("transition defaults = %+v", tr)
	}
	if c.Raw == nil || c.Extra != nil {
		t.Errorf("Raw = %v, Extra = %v", c.Raw, c.Extra)
	}

	for _, tc := range []struct {
		extra string
		mode  EntryMode
		auto  bool
	}{
		{"entryMachine: M\n", EntryMultiple, false}, // absent mode: multiple, no auto-create
		{"entryMachine: M\nentryMachineMode: singleton\n", EntrySingleton, true},
		{"entryMachine: M\nentryMachineMode: multiple\n", EntryMultiple, false},
		{"entryMachine: M\nentryMachineMode: multiple\nautoCreateEntryPoint: true\n", EntryMultiple, true},
		{"entryMachine: M\nentryMachineMode: singleton\nautoCreateEntryPoint: false\n", EntrySingleton, false},
	} {
		c, err := Parse([]byte(tc.extra+minimal), "entry.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if c.EntryMachineMode != tc.mode || c.AutoCreateEntryPoint != tc.auto {
			t.Errorf("%q: mode %q auto %v, want %q %v", tc.extra, c.EntryMachineMode, c.AutoCreateEntryPoint, tc.mode, tc.auto)
		}
	}
}

func TestOrderPaymentCrossComponent(t *testing.T) {
	order, payment := load(t, "order.yaml"), load(t, "payment.yaml")
	if order.Version != "2.1.0" || order.EntryMachineMode != EntryMultiple || order.AutoCreateEntryPoint {
		t.Errorf("order = %q auto %v", order.Version, order.AutoCreateEntryPoint)
	}
	if payment.EntryMachineMode != EntryMultiple || payment.AutoCreateEntryPoint {
		t.Errorf("payment mode %q auto %v", payment.EntryMachineMode, payment.AutoCreateEntryPoint)
	}
	m := order.Machine("Order")
	checkout := m.Candidates("Created", "CHECKOUT")[0]
	if checkout.Type != CrossComponent || checkout.TargetComponent != "PaymentComponent" || checkout.TargetMachine != "Payment" ||
		checkout.TargetEvent != "" || !reflect.DeepEqual(checkout.ContextMapping, map[string]string{"orderId": "orderId", "amount": "amount"}) {
		t.Errorf("CHECKOUT = %+v", checkout)
	}
	cancel := m.Candidates("Created", "CANCEL")[0]
	if cancel.TargetEvent != "ABORT" || len(cancel.MatchingRules) != 1 || cancel.MatchingRules[0].Operator != OpEq {
		t.Errorf("CANCEL = %+v", cancel)
	}
	rule := m.State("AwaitingPayment").CascadingRules[0]
	want := &CascadeRule{TargetComponent: "PaymentComponent", TargetMachine: "Payment", TargetState: "Pending", Event: "PROCESS",
		MatchingRules: rule.MatchingRules, Payload: map[string]any{"orderId": "{{orderId}}", "amount": "{{amount}}"}, Pos: rule.Pos}
	if !reflect.DeepEqual(rule, want) {
		t.Errorf("cascade = %+v", rule)
	}
	if ps := ValidateSet([]*Component{order, payment}); len(ps) != 0 {
		t.Errorf("ValidateSet(order, payment) = %v", ps)
	}
}

func TestTradingMatchingRules(t *testing.T) {
	c := load(t, "trading.yaml")
	if c.EntryMachineMode != EntrySingleton || c.AutoCreateEntryPoint {
		t.Errorf("mode %q auto %v", c.EntryMachineMode, c.AutoCreateEntryPoint)
	}
	desk := c.Machine("Desk")
	newOrder := desk.Candidates("Open", "NEW_ORDER")[0]
	if newOrder.Type != InterMachine || newOrder.TargetMachine != "Order" || newOrder.ContextMapping["AssetName"] != "payload.asset" {
		t.Errorf("NEW_ORDER = %+v", newOrder)
	}
	order := c.Machine("Order")
	if order.PublicMemberType != "Order" {
		t.Errorf("publicMemberType = %q", order.PublicMemberType)
	}
	var ops []Operator
	for _, r := range order.Candidates("Pending", "REJECT")[0].MatchingRules {
		ops = append(ops, r.Operator)
	}
	if want := []Operator{OpEq, OpNe, OpLt, OpGte, OpNe}; !reflect.DeepEqual(ops, want) {
		t.Errorf("operators = %v, want %v", ops, want)
	}
	exec := order.Candidates("Pending", "EXECUTION")
	if exec[0].MatchingRules[1].Operator != OpGt || exec[1].MatchingRules[1].Operator != OpLte ||
		exec[0].MatchingRules[0].EventProperty != "OrderId" || exec[0].MatchingRules[0].InstanceProperty != "Id" {
		t.Errorf("EXECUTION rules = %+v %+v", exec[0].MatchingRules, exec[1].MatchingRules)
	}
}

func TestParentChild(t *testing.T) {
	c := load(t, "parent_child.yaml")
	parcel := c.Machine("Parcel")
	if parcel.ParentLink == nil || *parcel.ParentLink != (ParentLink{Enabled: true, OnStateChange: "PARCEL_CHANGED"}) {
		t.Errorf("parentLink = %+v", parcel.ParentLink)
	}
	np := parcel.Candidates("InTransit", "DELIVER")[0].NotifyParent
	if np == nil || *np != (NotifyParent{Event: "PARCEL_DONE", IncludeState: true, IncludeContext: true}) {
		t.Errorf("notifyParent = %+v", np)
	}
	src := strings.Replace(minimal, "        event: GO\n", "        event: GO\n        notifyParent: {event: UP, includeState: false}\n", 1)
	c2, err := Parse([]byte(src), "np.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if np := c2.StateMachines[0].Transitions[0].NotifyParent; *np != (NotifyParent{Event: "UP"}) {
		t.Errorf("notifyParent = %+v", np)
	}
}

func TestCascadingRules(t *testing.T) {
	c := load(t, "cascade.yaml")
	if c.Version != "1.0" {
		t.Errorf("version = %q, want the source text 1.0", c.Version)
	}
	if c.Raw["version"] != "1.0" {
		t.Errorf("Raw version = %#v", c.Raw["version"])
	}
	order := c.Machine("Order")
	draft := order.State("Draft")
	if draft.OnEntry != "recordOrder" || draft.OnExit != "leaveDraft" {
		t.Errorf("legacy entryMethod/exitMethod: %+v", draft)
	}
	rules := order.State("Confirmed").CascadingRules
	if len(rules) != 2 {
		t.Fatalf("rules = %v", rules)
	}
	want := map[string]any{
		"orderId":  "{{Id}}",
		"address":  map[string]any{"street": "{{customer.address.street}}", "city": "{{customer.address.city}}"},
		"note":     "fixed text",
		"priority": 2,
	}
	if !reflect.DeepEqual(rules[0].Payload, want) {
		t.Errorf("payload = %#v", rules[0].Payload)
	}
	if rules[0].TargetComponent != "" || rules[0].MatchingRules[0].InstanceProperty != "orderId" || rules[1].Payload != nil {
		t.Errorf("rules = %+v %+v", rules[0], rules[1])
	}
}

func TestRawAndExtra(t *testing.T) {
	data, err := os.ReadFile("testdata/unknown_keys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "unknown_keys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Extra, map[string]any{"owner": "team-a"}) {
		t.Errorf("Extra = %#v", c.Extra)
	}
	m := c.Raw["stateMachines"].([]any)[0].(map[string]any)
	if m["colour"] != "blue" || m["initialState"] != "A" {
		t.Errorf("Raw machine = %#v", m)
	}
	tr := m["transitions"].([]any)[0].(map[string]any)
	if tr["timeoutMS"] != 5000 {
		t.Errorf("Raw transition = %#v", tr)
	}
	if _, err := json.Marshal(c.Raw); err != nil {
		t.Errorf("Raw is not JSON-encodable: %v", err)
	}
	// Non-string keys are normalised so the definition can travel as JSON.
	c2, err := Parse([]byte("metadata: {1: one, true: yes}\n"+minimal), "keys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(c2.Raw); err != nil {
		t.Errorf("Raw with non-string keys: %v", err)
	}
	if md := c2.Metadata.(map[string]any); md["1"] != "one" {
		t.Errorf("metadata = %#v", md)
	}
}

func TestYAMLAnchorsAndMerge(t *testing.T) {
	src := `name: Anchors
stateMachines:
  - name: M
    initialState: A
    states:
      - &final {name: Z, type: final}
      - name: A
    transitions:
      - &go
        from: A
        to: Z
        event: GO
      - <<: *go
        event: STOP
        guard: "context.x === 1"
`
	c, err := Parse([]byte(src), "anchors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := c.StateMachines[0]
	if m.State("Z").Type != StateFinal || len(m.Transitions) != 2 {
		t.Fatalf("machine = %+v", m)
	}
	stop := m.Transitions[1]
	if stop.From != "A" || stop.To != "Z" || stop.Event != "STOP" || len(stop.Guards) != 1 {
		t.Errorf("merged transition = %+v", stop)
	}
}

func TestLoadFileErrors(t *testing.T) {
	if _, err := LoadFile("testdata/does-not-exist.yaml"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	_, err := Parse([]byte("name: X\n"), "x.yaml")
	var le *LoadError
	if !errors.As(err, &le) || le.File != "x.yaml" || len(le.Problems) != 1 {
		t.Fatalf("err = %#v", err)
	}
	if got := err.Error(); got != `x.yaml:1:1: error: stateMachines: missing required key "stateMachines"` {
		t.Errorf("Error() = %q", got)
	}
}

func TestValidateReturnsErrorsThenWarnings(t *testing.T) {
	src := `name: Mixed
stateMachines:
  - name: M
    initialState: A
    states:
      - name: A
      - name: B
      - name: C
        type: final
    transitions:
      - from: A
        to: C
        event: GO
      - from: B
        to: Q
        event: GO
  - name: N
    initialState: X
    states:
      - name: X
      - name: Y
`
	ps := Validate([]byte(src), "mixed.yaml")
	if len(ps) != 4 {
		t.Fatalf("problems = %v", ps)
	}
	if ps[0].Severity != SeverityError || ps[0].Path != "stateMachines[0].transitions[1].to" || ps[0].Pos.Line != 15 {
		t.Errorf("first = %s", ps[0])
	}
	// Machine M is broken, so only N gets graph warnings.
	for _, p := range ps[1:] {
		if p.Severity != SeverityWarning || !strings.HasPrefix(p.Path, "stateMachines[1]") {
			t.Errorf("warning = %s", p)
		}
	}
}
