package httpapi

import (
	"fmt"
	"net/http"
	"strings"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/store"
)

// maxSequenceMessages bounds a sequence diagram.
const maxSequenceMessages = 500

// seqParticipant is a lifeline: an instance, or where root events came from (API, timer …).
type seqParticipant struct {
	ID            string `json:"id"`
	Label         string `json:"label"`
	InstanceID    string `json:"instanceId,omitempty"`
	ComponentName string `json:"componentName,omitempty"`
	MachineName   string `json:"machineName,omitempty"`
}

// seqMessage is an arrow: an event from the instance whose event caused it to its target.
type seqMessage struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Label     string `json:"label"`
	EventID   string `json:"eventId"`
	Type      string `json:"type"`
	FromState string `json:"fromState,omitempty"`
	ToState   string `json:"toState"`
	Timestamp int64  `json:"timestamp"`
}

type sequence struct {
	Participants []seqParticipant `json:"participants"`
	Messages     []seqMessage     `json:"messages"`
	Truncated    bool             `json:"truncated,omitempty"`
}

// buildSequence draws events (oldest first) from their causation ids: each event is an arrow
// from the instance of the event that caused it to the instance it happened to. Events
// without a known cause come from a participant named by their source (API, timer …).
func buildSequence(evs []store.Event) sequence {
	seq := sequence{Participants: []seqParticipant{}, Messages: []seqMessage{}}
	byID := make(map[string]*store.Event, len(evs))
	for i := range evs {
		byID[evs[i].ID] = &evs[i]
	}
	index := map[string]string{} // instance id or "src:"+source → participant id
	participant := func(key string, p seqParticipant) string {
		if id, ok := index[key]; ok {
			return id
		}
		p.ID = fmt.Sprintf("p%d", len(seq.Participants))
		index[key] = p.ID
		seq.Participants = append(seq.Participants, p)
		return p.ID
	}
	instance := func(e *store.Event) string {
		return participant(e.InstanceID, seqParticipant{Label: e.Machine + "#" + shortID(e.InstanceID),
			InstanceID: e.InstanceID, ComponentName: e.Component, MachineName: e.Machine})
	}
	for i := range evs {
		if len(seq.Messages) == maxSequenceMessages {
			seq.Truncated = true
			break
		}
		e := &evs[i]
		from := ""
		if cause := causeOf(evs[:i], byID, e); cause != nil {
			from = instance(cause)
		} else {
			src := e.Source
			if src == "" {
				src = "external"
			}
			from = participant("src:"+src, seqParticipant{Label: sourceLabel(src)})
		}
		to := instance(e)
		seq.Messages = append(seq.Messages, seqMessage{From: from, To: to, Label: messageLabel(e),
			EventID: e.ID, Type: e.Type, FromState: e.FromState, ToState: e.ToState, Timestamp: e.PersistedAt})
	}
	return seq
}

// causeOf returns an event of the instance that caused e: the event named by its causation
// id; else, for a creation, the last earlier event of its parent; else, for an event from
// another component, the last earlier event of that component (the engine records the outbox
// message's id as the causation of instances created by messages, and no causation for
// inter_machine children).
func causeOf(before []store.Event, byID map[string]*store.Event, e *store.Event) *store.Event {
	if c, ok := byID[e.CausationID]; ok && e.CausationID != "" && c.ID != e.ID {
		return c
	}
	parent, _ := e.Payload["parentInstanceId"].(string)
	if e.Type != store.EventCreated {
		parent = ""
	}
	if parent == "" && e.SourceComponent == "" {
		return nil
	}
	for i := len(before) - 1; i >= 0; i-- {
		b := &before[i]
		if b.InstanceID == e.InstanceID {
			continue
		}
		if (parent != "" && b.InstanceID == parent) || (parent == "" && b.Component == e.SourceComponent) {
			return b
		}
	}
	return nil
}

func shortID(id string) string {
	id = strings.ReplaceAll(id, "-", "")
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}

func sourceLabel(src string) string {
	switch xc.Source(src) {
	case xc.SourceAPI:
		return "API"
	case xc.SourceTimer:
		return "Timer"
	default:
		return src
	}
}

func messageLabel(e *store.Event) string {
	var b strings.Builder
	if xc.Source(e.Source) == xc.SourceTimer {
		b.WriteString("⏱ ")
	}
	if e.Type == store.EventCreated {
		b.WriteString("create → " + e.ToState)
	} else {
		b.WriteString(e.Type + ": " + e.FromState + " → " + e.ToState)
	}
	if xc.Source(e.Source) == xc.SourceAPI && e.Actor != "" {
		b.WriteString(" [" + e.Actor + "]")
	}
	return b.String()
}

// mermaidText makes a label safe on one Mermaid line: no line breaks, no statement
// separators, no entity codes.
func mermaidText(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ", ";", ",", "#", "＃").Replace(s)
}

// mermaid renders the sequence as a Mermaid sequenceDiagram.
func (seq sequence) mermaid() string {
	var b strings.Builder
	b.WriteString("sequenceDiagram\n    autonumber\n")
	for _, p := range seq.Participants {
		label := mermaidText(p.Label)
		if p.InstanceID != "" {
			// Participant labels keep "Machine#shortid"; '#' is safe there without ';'.
			label = mermaidText(p.MachineName) + "#" + shortID(p.InstanceID)
		}
		fmt.Fprintf(&b, "    participant %s as %s\n", p.ID, label)
	}
	for _, m := range seq.Messages {
		fmt.Fprintf(&b, "    %s->>%s: %s\n", m.From, m.To, mermaidText(m.Label))
	}
	return b.String()
}

// handleSequence answers the sequence diagram of an instance's correlations (or of
// ?correlationId= only): format=mermaid (default) gives {diagram}, format=json the
// participants and messages.
func (s *server) handleSequence(w http.ResponseWriter, r *http.Request) error {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "mermaid"
	}
	if format != "mermaid" && format != "json" {
		return badRequest("format %q: want mermaid or json", truncate(format, 32))
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	id := pathID(r)
	if err := checkID(id); err != nil {
		return err
	}
	in, err := s.b.Instance(ctx, id)
	if err != nil {
		return err
	}
	hist, err := s.recentHistory(ctx, in.ID)
	if err != nil {
		return err
	}
	var evs []store.Event
	var ids []string
	if c := strings.ToLower(r.URL.Query().Get("correlationId")); c != "" {
		if err := checkID(c); err != nil {
			return err
		}
		if evs, err = s.b.Correlated(ctx, c); err != nil {
			return err
		}
		ids = []string{c}
	} else if evs, ids, err = s.related(ctx, hist); err != nil {
		return err
	}
	seq := buildSequence(evs)
	out := map[string]any{"instanceId": in.ID, "correlationIds": ids, "format": format}
	if format == "json" {
		out["participants"], out["messages"], out["truncated"] = seq.Participants, seq.Messages, seq.Truncated
	} else {
		out["diagram"] = seq.mermaid()
	}
	return writeJSON(w, http.StatusOK, out)
}
