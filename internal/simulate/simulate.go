// Package simulate runs one component fully in memory on a virtual clock: the engine of
// `xcomponent simulate`, and what the conformance tests drive.
package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/clock"
	"github.com/xcomponent/xcomponent/component"
	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/xcomponenttest"
)

// Epoch is the virtual clock's start, fixed so that runs are reproducible.
var Epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Step is one line of a scenario. Exactly one of Type, Advance, Create, Broadcast is set.
type Step struct {
	Type      string         `json:"type,omitempty"`
	Payload   map[string]any `json:"payload,omitempty"`
	Instance  *int           `json:"instance,omitempty"`
	Advance   string         `json:"advance,omitempty"`
	Create    *CreateStep    `json:"create,omitempty"`
	Broadcast *BroadcastStep `json:"broadcast,omitempty"`
}

// CreateStep creates an instance as the API would.
type CreateStep struct {
	Machine string         `json:"machine"`
	Context map[string]any `json:"context,omitempty"`
}

// BroadcastStep broadcasts an event to a machine's instances.
type BroadcastStep struct {
	Machine string         `json:"machine"`
	Type    string         `json:"type"`
	Payload map[string]any `json:"payload,omitempty"`
	State   string         `json:"state,omitempty"`
}

// Report is the outcome of a run (the JSON of `simulate --json`).
type Report struct {
	Path      []string       `json:"path"`
	Instances []InstanceInfo `json:"instances"`
	Steps     []StepResult   `json:"steps"`
}

// InstanceInfo describes one instance at the end of the run.
type InstanceInfo struct {
	Index        int            `json:"index"`
	ID           string         `json:"id"`
	MachineName  string         `json:"machineName"`
	CurrentState string         `json:"currentState"`
	Status       store.Status   `json:"status"`
	Context      map[string]any `json:"context"`
	// ParentInstanceID is null for an instance without a parent (the key is always there).
	ParentInstanceID *string `json:"parentInstanceId"`
	Version          int64   `json:"version"`
}

// StepResult says what one step did.
type StepResult struct {
	Step      int    `json:"step"`
	Accepted  bool   `json:"accepted"`
	Error     string `json:"error"` // "" when accepted
	Processed int    `json:"processed"`
	// Trace lists the runtime events of the step, for the readable output.
	Trace []xc.RuntimeEvent `json:"-"`
}

// Options of a run.
type Options struct {
	Machine string
	Context map[string]any
	Steps   []Step
	Logger  *slog.Logger
}

// ParseSteps decodes a JSON array of steps, rejecting unknown keys.
func ParseSteps(data []byte) ([]Step, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("steps: not a JSON array: %w", err)
	}
	steps := make([]Step, len(raw))
	for i, r := range raw {
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&steps[i]); err != nil {
			return nil, fmt.Errorf("steps[%d]: %w", i, err)
		}
		n := 0
		if steps[i].Type != "" {
			n++
		}
		if steps[i].Advance != "" {
			n++
		}
		if steps[i].Create != nil {
			n++
		}
		if steps[i].Broadcast != nil {
			n++
		}
		if n != 1 {
			return nil, fmt.Errorf("steps[%d]: exactly one of type, advance, create, broadcast is required", i)
		}
		if steps[i].Advance != "" {
			d, err := time.ParseDuration(steps[i].Advance)
			if err != nil {
				return nil, fmt.Errorf("steps[%d].advance: %w", i, err)
			}
			if d < 0 {
				return nil, fmt.Errorf("steps[%d].advance: %s: the clock does not go backwards", i, steps[i].Advance)
			}
		}
	}
	return steps, nil
}

// Run loads comp into a fresh in-memory engine on a virtual clock, creates instance 0 and
// applies the steps.
func Run(ctx context.Context, comp *component.Component, opt Options) (*Report, error) {
	if comp.Machine(opt.Machine) == nil {
		return nil, fmt.Errorf("machine %s not found in component %s", opt.Machine, comp.Name)
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	fake := clock.NewFake(Epoch)
	var order []string // ids in creation order
	var trace []xc.RuntimeEvent
	// A synchronous listener sees every runtime event, however many a step causes (a
	// subscription's buffer could overflow); in manual mode it runs on this goroutine.
	listen := func(ev xc.RuntimeEvent) {
		trace = append(trace, ev)
		if ev.Kind() == xc.EvInstanceCreated {
			order = append(order, ev.InstanceID)
		}
	}
	eng := xcomponenttest.NewManual(xc.Options{Clock: fake, Logger: log}, xcomponenttest.Options{Listen: listen})
	defer eng.Close(context.Background())
	collect := func() {}

	if err := eng.Load(ctx, comp); err != nil {
		return nil, err
	}
	if err := eng.Settle(ctx); err != nil {
		return nil, err
	}
	collect()
	// Instance 0: the auto-created singleton entry instance when it is of machine M.
	var zero string
	if opt.Machine == comp.EntryMachine && comp.EntryMachineMode == component.EntrySingleton {
		for _, in := range eng.Live(comp.Name, opt.Machine) {
			if in.IsEntryPoint {
				zero = in.ID
			}
		}
	}
	if zero == "" {
		// Instance 0 gets the schema's defaults but is not refused for the rest of the schema:
		// a scenario may start from any data.
		in, err := eng.Create(ctx, xc.CreateRequest{Component: comp.Name, Machine: opt.Machine, Data: withDefaults(comp.Machine(opt.Machine), opt.Context)})
		if err != nil {
			return nil, fmt.Errorf("create instance 0: %w", err)
		}
		zero = in.ID
		if err := eng.Settle(ctx); err != nil {
			return nil, err
		}
	}
	collect()

	rep := &Report{Steps: []StepResult{}}
	first, err := eng.Store().History(ctx, zero)
	if err == nil && len(first) > 0 {
		rep.Path = append(rep.Path, first[0].ToState)
	}
	pathFrom := func(evs []xc.RuntimeEvent) {
		for _, ev := range evs {
			if sc, ok := ev.Data.(xc.StateChanged); ok && ev.InstanceID == zero {
				rep.Path = append(rep.Path, sc.NewState)
			}
		}
	}
	pathFrom(trace)
	index := func(i *int) (string, error) {
		if i == nil || *i == 0 {
			return zero, nil
		}
		n := 0
		for _, id := range order {
			if id == zero {
				continue
			}
			n++
			if n == *i {
				return id, nil
			}
		}
		return "", fmt.Errorf("no instance %d", *i)
	}

	for i, st := range opt.Steps {
		trace = trace[:0]
		res := StepResult{Step: i, Accepted: true}
		var err error
		switch {
		case st.Type != "":
			var id string
			if id, err = index(st.Instance); err == nil {
				_, err = eng.Send(ctx, id, xc.Event{Type: st.Type, Payload: st.Payload})
			}
		case st.Advance != "":
			d, _ := time.ParseDuration(st.Advance)
			err = eng.Advance(ctx, d)
		case st.Create != nil:
			_, err = eng.Create(ctx, xc.CreateRequest{Component: comp.Name, Machine: st.Create.Machine, Data: st.Create.Context, Validate: true})
		case st.Broadcast != nil:
			b := st.Broadcast
			_, err = eng.Broadcast(ctx, xc.BroadcastRequest{Component: comp.Name, Machine: b.Machine,
				Event: xc.Event{Type: b.Type, Payload: b.Payload}, State: b.State})
		}
		if serr := eng.Settle(ctx); serr != nil && err == nil {
			err = serr
		}
		collect()
		if err != nil {
			res.Accepted = false
			res.Error = err.Error()
			if errors.Is(err, context.Canceled) {
				return nil, err
			}
		}
		seen := map[string]bool{}
		for _, ev := range trace {
			if ev.Kind() == xc.EvStateChange && !seen[ev.InstanceID] {
				seen[ev.InstanceID] = true
				res.Processed++
			}
		}
		res.Trace = append([]xc.RuntimeEvent(nil), trace...)
		pathFrom(trace)
		rep.Steps = append(rep.Steps, res)
	}

	ids := append([]string{zero}, without(order, zero)...)
	for i, id := range ids {
		in, err := eng.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		info := InstanceInfo{Index: i, ID: in.ID, MachineName: in.MachineName,
			CurrentState: in.CurrentState, Status: in.Status, Context: in.Context, Version: in.Version}
		if in.ParentInstanceID != "" {
			parent := in.ParentInstanceID
			info.ParentInstanceID = &parent
		}
		rep.Instances = append(rep.Instances, info)
	}
	return rep, nil
}

// withDefaults returns data with the contextSchema defaults of the fields it lacks.
func withDefaults(m *component.Machine, data map[string]any) map[string]any {
	out := make(map[string]any, len(data))
	for k, v := range data {
		out[k] = v
	}
	for name, f := range m.ContextSchema {
		if _, ok := out[name]; !ok && f.Default != nil {
			out[name] = f.Default
		}
	}
	return out
}

func without(ids []string, skip string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != skip {
			out = append(out, id)
		}
	}
	return out
}
