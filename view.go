package xcomponent

import (
	"github.com/xcomponent/xcomponent/store"
)

// Instance is a read-only view of one instance, in the JSON shape of the API.
type Instance struct {
	ID                string           `json:"id"`
	ComponentName     string           `json:"componentName"`
	MachineName       string           `json:"machineName"`
	CurrentState      string           `json:"currentState"`
	Context           map[string]any   `json:"context"`
	PublicMember      map[string]any   `json:"publicMember,omitempty"`
	Status            store.Status     `json:"status"`
	IsEntryPoint      bool             `json:"isEntryPoint,omitempty"`
	ParentInstanceID  string           `json:"parentInstanceId,omitempty"`
	ParentMachineName string           `json:"parentMachineName,omitempty"`
	CreatedAt         int64            `json:"createdAt"`
	UpdatedAt         int64            `json:"updatedAt"`
	Version           int64            `json:"version"`
	PendingTimeouts   []PendingTimeout `json:"pendingTimeouts"`
}

// PendingTimeout is an armed timer as shown to users.
type PendingTimeout struct {
	Event       string `json:"event"`
	TargetState string `json:"targetState"`
	DueAt       int64  `json:"dueAt"`
	RemainingMs int64  `json:"remainingMs"`
	TotalMs     int64  `json:"totalMs"`
	Kind        string `json:"kind"`
}

// View turns a stored record into the API view; publicMember is set when the machine declares
// publicMemberType. now (ms epoch) computes remainingMs.
func View(rec *store.Instance, publicMember bool, now int64) Instance {
	v := Instance{
		ID: rec.ID, ComponentName: rec.Component, MachineName: rec.Machine,
		CurrentState: rec.State, Context: rec.Data, Status: rec.Status,
		IsEntryPoint: rec.IsEntryPoint, ParentInstanceID: rec.ParentID,
		ParentMachineName: rec.ParentMachine, CreatedAt: rec.CreatedAt,
		UpdatedAt: rec.UpdatedAt, Version: rec.Version,
		PendingTimeouts: pendingTimeouts(rec, now),
	}
	if v.Context == nil {
		v.Context = map[string]any{}
	}
	if publicMember {
		v.PublicMember = v.Context
	}
	return v
}

// pendingTimeouts lists the unspent timers of a record as of now (the PendingTimeouts of its
// View, without building the view).
func pendingTimeouts(rec *store.Instance, now int64) []PendingTimeout {
	out := make([]PendingTimeout, 0, len(rec.Timers))
	for _, t := range rec.Timers {
		if t.Spent {
			continue
		}
		rem := t.DueAt - now
		if rem < 0 {
			rem = 0
		}
		out = append(out, PendingTimeout{
			Event: t.Event, TargetState: t.TargetState, DueAt: t.DueAt,
			RemainingMs: rem, TotalMs: t.TotalMs, Kind: t.Kind,
		})
	}
	return out
}
