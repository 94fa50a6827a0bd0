package conformance

import (
	"testing"
)

// docs/semantics.md step 8: inter_machine children and parent notifications.
var _ = register(familyScenarios)

func TestInterMachineAndParents(t *testing.T) { runScenarios(t, familyScenarios()) }

func familyScenarios() []scenario {
	const f = "family.yaml"
	childID := func(t *testing.T, r *report, parent, child int) {
		t.Helper()
		if got := ctxOf(t, r, parent)["childInstanceId"]; got != r.Instances[child].ID {
			t.Errorf("parent childInstanceId = %v, want instance %d id %s", got, child, r.Instances[child].ID)
		}
	}
	return []scenario{
		{name: "inter_machine: contextMapping with dot paths over data and payload", file: f, machine: "Parent",
			ctx: `{"order":{"id":7},"keep":1}`, steps: `[{"type":"SPAWN","payload":{"qty":3}}]`,
			acc: "A1", n: 2, path: []string{"Idle", "Waiting"},
			insts: []want{
				I(0, "Parent", "Waiting").V(1).NoParent().Exact(`{"order":{"id":7},"keep":1,"qty":3}`),
				I(1, "Child", "Created").V(0).St("active").Parent(0).Exact(`{"orderId":7,"qty":3}`),
			}},
		{name: "inter_machine without contextMapping copies data and payload", file: f, machine: "Parent",
			ctx: `{"a":1,"b":1}`, steps: `[{"type":"SPAWN_ALL","payload":{"b":2}}]`,
			acc: "A1", n: 2,
			insts: []want{I(1, "Child", "Created").Parent(0).Exact(`{"a":1,"b":2}`)}},
		{name: "inter_machine child data is a copy", file: f, machine: "Parent",
			ctx: `{"a":1}`, steps: `[{"type":"SPAWN_ALL"},{"type":"WORK","instance":1,"payload":{"a":99}}]`,
			acc: "A1 A2", insts: []want{I(0, "Parent", "Waiting").Ctx(`{"a":1}`), I(1, "Child", "Working").Ctx(`{"a":99}`)}},
		{name: "inter_machine with matchingRules: parent not merged, child gets data ∪ payload", file: f, machine: "Parent",
			ctx: `{"key":"k","a":1}`, steps: `[{"type":"SPAWN_RULED","payload":{"key":"zzz","extra":5}}]`,
			acc: "A1", n: 2,
			insts: []want{
				I(0, "Parent", "Waiting").Exact(`{"key":"k","a":1}`),
				I(1, "Child", "Created").Parent(0).Exact(`{"key":"zzz","a":1,"extra":5}`),
			}},
		{name: "inter_machine self-loop creates one child per event, numbered in order", file: f, machine: "Parent",
			steps: `[{"type":"SPAWN_ALL"},{"type":"SPAWN_MORE","payload":{"n":1}},{"type":"SPAWN_MORE","payload":{"n":2}}]`,
			acc:   "A1 A1 A1", n: 4, path: []string{"Idle", "Waiting", "Waiting", "Waiting"},
			insts: []want{
				I(1, "Child", "Created").Parent(0),
				I(2, "Child", "Created").Parent(0).Exact(`{"n":1}`),
				I(3, "Child", "Created").Parent(0).Exact(`{"n":2}`),
			}},
		{name: "parentLink: the parent is told of each child state change", file: f, machine: "Parent",
			steps: `[{"type":"SPAWN_ALL"},{"type":"WORK","instance":1}]`,
			acc:   "A1 A2", path: []string{"Idle", "Waiting", "Waiting"},
			insts: []want{I(0, "Parent", "Waiting").V(2).
				Ctx(`{"childMachine":"Child","previousState":"Created","newState":"Working"}`).Absent("childContext")},
			check: func(t *testing.T, r *report) { childID(t, r, 0, 1) }},
		{name: "parentLink: child self-loops notify too", file: f, machine: "Parent",
			steps: `[{"type":"SPAWN_ALL"},{"type":"WORK","instance":1},{"type":"NUDGE","instance":1},{"type":"NUDGE","instance":1}]`,
			acc:   "A1 A2 A2 A2", insts: []want{I(0, "Parent", "Waiting").V(4).Ctx(`{"previousState":"Working","newState":"Working"}`)}},
		{name: "notifyParent replaces parentLink: includeState false, includeContext true", file: f, machine: "Parent",
			steps: `[{"type":"SPAWN_ALL","payload":{"tag":"t"}},{"type":"WORK","instance":1},{"type":"FINISH","instance":1,"payload":{"end":true}}]`,
			acc:   "A1 A2 A2", path: []string{"Idle", "Waiting", "Waiting", "Waiting"},
			insts: []want{
				// newState still "Working" from the WORK notification: FINISH's has none.
				I(0, "Parent", "Waiting").V(3).Ctx(`{"previousState":"Working","newState":"Working","childContext":{"tag":"t","end":true},"childMachine":"Child"}`),
				I(1, "Child", "Done").St("completed").V(2),
			},
			check: func(t *testing.T, r *report) { childID(t, r, 0, 1) }},
		{name: "notifyParent defaults: includeState true, includeContext false", file: f, machine: "Parent",
			steps: `[{"type":"SPAWN_QUIET","payload":{"secret":1}},{"type":"TELL","instance":1}]`,
			acc:   "A1 A2",
			insts: []want{I(0, "Parent", "Waiting").V(2).
				Ctx(`{"childMachine":"Quiet","previousState":"Created","newState":"Created"}`).Absent("childContext")}},
		{name: "notifyParent includeState false: no newState", file: f, machine: "Parent",
			steps: `[{"type":"SPAWN_QUIET"},{"type":"TELL_NOSTATE","instance":1}]`,
			acc:   "A1 A2",
			insts: []want{I(0, "Parent", "Waiting").V(2).Ctx(`{"childMachine":"Quiet","previousState":"Created"}`).Absent("newState", "childContext")}},
		{name: "parent notification is sent before the cascade of the same transition", file: "order.yaml", machine: "P",
			steps: `[{"type":"SPAWN"},{"type":"WORK","instance":1}]`,
			acc:   "A1 A2", insts: []want{I(0, "P", "Waiting").V(3).Ctx(`{"previousState":"from-cascade","newState":"Working"}`)}},
		{name: "no parentLink and no notifyParent: parent not told", file: f, machine: "Parent",
			steps: `[{"type":"SPAWN_QUIET"},{"type":"FINISH","instance":1}]`,
			acc:   "A1 A1", insts: []want{I(0, "Parent", "Waiting").V(1), I(1, "Quiet", "Done").St("completed")}},
		{name: "notification to a completed parent is dropped without harm", file: f, machine: "Parent",
			steps: `[{"type":"SPAWN_ALL"},{"type":"CLOSE"},{"type":"WORK","instance":1},{"type":"FINISH","instance":1}]`,
			acc:   "A1 A1 A1 A1",
			insts: []want{I(0, "Parent", "Closed").St("completed").V(2), I(1, "Child", "Done").St("completed").V(2)}},
		{name: "parentLink enabled false: parent not told", file: f, machine: "Parent",
			steps: `[{"type":"SPAWN_MUTED"},{"type":"FINISH","instance":1}]`,
			acc:   "A1 A1", insts: []want{I(0, "Parent", "Waiting").V(1), I(1, "Muted", "Done").Parent(0)}},
		{name: "children spawned by one broadcast are numbered in delivery order", file: f, machine: "Parent",
			ctx: `{"p":0}`,
			steps: `[{"create":{"machine":"Parent","context":{"p":1}}},{"create":{"machine":"Parent","context":{"p":2}}},
				{"broadcast":{"machine":"Parent","type":"SPAWN_ALL"}}]`,
			acc: "A0 A0 A3", n: 6,
			insts: []want{I(3, "Child", "Created").Parent(0).Exact(`{"p":0}`), I(4, "Child", "Created").Parent(1).Exact(`{"p":1}`),
				I(5, "Child", "Created").Parent(2).Exact(`{"p":2}`)}},
		{name: "a created child has no parent and notifies nobody", file: f, machine: "Parent",
			steps: `[{"create":{"machine":"Child"}},{"type":"WORK","instance":1}]`,
			acc:   "A0 A1", insts: []want{I(0, "Parent", "Idle").V(0), I(1, "Child", "Working").NoParent()}},
	}
}

var _ = register(pingPongScenarios)

func TestNoDeadlock(t *testing.T) { runScenarios(t, pingPongScenarios()) }

func pingPongScenarios() []scenario {
	return []scenario{
		{name: "parent and child notify each other within one step", file: "pingpong.yaml", machine: "Boss",
			steps: `[{"type":"HIRE"},{"type":"START","instance":1}]`,
			acc:   "A1 A2", path: []string{"Idle", "Managing", "Managing", "Managing"},
			insts: []want{I(0, "Boss", "Managing").V(3), I(1, "Worker", "Retired").St("completed").V(2).Parent(0)}},
		{name: "several children in one cascade", file: "pingpong.yaml", machine: "Boss",
			steps: `[{"type":"HIRE"},{"create":{"machine":"Worker"}},{"type":"START","instance":2},{"type":"START","instance":1}]`,
			// instance 2 has no parent: Busy, until the boss's next cascade retires it too.
			acc:   "A1 A0 A1 A3",
			insts: []want{I(1, "Worker", "Retired").St("completed"), I(2, "Worker", "Retired").St("completed")}},
	}
}

// Cascading rules.
var _ = register(cascadeScenarios)

func TestCascades(t *testing.T) { runScenarios(t, cascadeScenarios()) }

func cascadeScenarios() []scenario {
	const f = "cascade.yaml"
	lines := `{"create":{"machine":"Line","context":{"orderId":1}}},
		{"create":{"machine":"Line","context":{"orderId":2}}},
		{"create":{"machine":"Line","context":{"orderId":"1"}}}`
	return []scenario{
		{name: "templates keep types, nested maps, literal text; routed by the cascade's rules", file: f, machine: "Order",
			ctx:   `{"id":1,"amount":99.5,"customer":{"vip":true,"name":"ann"},"zero":0,"flag":false,"tags":["a",2]}`,
			steps: `[` + lines + `,{"type":"CONFIRM"}]`,
			acc:   "A0 A0 A0 A2", n: 4, path: []string{"Draft", "Confirmed"},
			insts: []want{
				I(1, "Line", "Confirmed").V(1).Ctx(`{"orderId":1,"total":99.5,"vip":true,
					"customer":{"vip":true,"name":"ann"},
					"nested":{"ref":1,"fixed":"x","deeper":{"n":99.5}},
					"literal":"order-{{id}}","constant":5,"spaced":1,"zero":0,"no":false,"list":["a",2]}`),
				I(2, "Line", "Open").V(0).Exact(`{"orderId":2}`),
				I(3, "Line", "Open").V(0).Exact(`{"orderId":"1"}`),
			},
			check: func(t *testing.T, r *report) {
				// A missing path gives no value: absent or null, never the template text.
				if v, ok := ctxOf(t, r, 1)["missing"]; ok && v != nil {
					t.Errorf(`missing path template gave %s, want absent or null`, js(v))
				}
			}},
		{name: "cascade without rules anywhere reaches every instance in targetState", file: f, machine: "Order",
			steps: `[` + lines + `,{"type":"PING","instance":1},{"type":"PING_ALL"}]`,
			acc:   "A0 A0 A0 A1 A3",
			insts: []want{I(0, "Order", "Pinged"), I(1, "Line", "Pinged").V(1), I(2, "Line", "Pinged").V(1), I(3, "Line", "Pinged").V(1)}},
		{name: "cascade without rules is routed by the target transition's rules", file: f, machine: "Order",
			ctx:   `{"id":1}`,
			steps: `[` + lines + `,{"type":"ROUTE"}]`,
			acc:   "A0 A0 A0 A2",
			insts: []want{I(1, "Line", "Routed").Exact(`{"orderId":1}`), I(2, "Line", "Open"), I(3, "Line", "Open")}},
		{name: "self-loop targets get the cascaded event once", file: f, machine: "Order",
			steps: `[` + lines + `,{"type":"TOUCH_ALL"}]`,
			acc:   "A0 A0 A0 A4",
			insts: []want{I(1, "Line", "Open").V(1), I(2, "Line", "Open").V(1), I(3, "Line", "Open").V(1)}},
		{name: "cascade rule with an operator", file: f, machine: "Order",
			ctx: `{"amount":50}`,
			steps: `[{"create":{"machine":"Line","context":{"amount":10}}},
				{"create":{"machine":"Line","context":{"amount":50}}},
				{"create":{"machine":"Line","context":{"amount":100}}},
				{"type":"THRESHOLD"}]`,
			acc: "A0 A0 A0 A3",
			insts: []want{I(1, "Line", "Open").V(0), I(2, "Line", "Big").Ctx(`{"min":50,"amount":50}`),
				I(3, "Line", "Big").Ctx(`{"min":50,"amount":100}`)}},
		{name: "routed by the cascade but the target transition's rules fail: refused", file: f, machine: "Order",
			ctx:   `{"id":1}`,
			steps: `[{"create":{"machine":"Line","context":{"orderId":1,"code":"z"}}},{"type":"MISMATCH"}]`,
			acc:   "A0 A1",
			insts: []want{I(0, "Order", "Mismatched"), I(1, "Line", "Open").V(0)}},
		{name: "cascade only reaches instances in targetState", file: f, machine: "Order",
			ctx:   `{"id":1}`,
			steps: `[` + lines + `,{"type":"TOUCH","instance":1},{"type":"ORDER_CONFIRMED","instance":1},{"type":"CONFIRM"}]`,
			acc:   "A0 A0 A0 A1 A1 A1",
			insts: []want{I(1, "Line", "Confirmed").V(2)}},
		{name: "the source instance is among the cascade's targets", file: "peers.yaml", machine: "Peer",
			steps: `[{"type":"GO"}]`, acc: "A1", path: []string{"Idle", "Ready", "Synced"}},
		{name: "cascade targets fixed before delivery; each once", file: "peers.yaml", machine: "Peer",
			steps: `[{"create":{"machine":"Peer"}},{"create":{"machine":"Peer"}},{"broadcast":{"machine":"Peer","type":"GO"}}]`,
			acc:   "A0 A0 A3", insts: []want{I(0, "Peer", "Synced").V(2), I(1, "Peer", "Synced").V(2), I(2, "Peer", "Synced").V(2)}},
		{name: "cascade on entering a final state", file: "peers.yaml", machine: "Peer", ctx: `{"name":"zoe"}`,
			steps: `[{"create":{"machine":"Peer"}},{"type":"LEAVE"}]`, acc: "A0 A2",
			insts: []want{I(0, "Peer", "Gone").St("completed"), I(1, "Peer", "Idle").V(1).Exact(`{"from":"zoe"}`)}},
		{name: "cascade with no target instance is harmless", file: f, machine: "Order",
			steps: `[{"type":"PING_ALL"}]`, acc: "A1", n: 1},
	}
}
