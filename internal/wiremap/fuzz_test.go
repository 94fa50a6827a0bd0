package wiremap_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	xc "github.com/xcomponent/xcomponent"
	"github.com/xcomponent/xcomponent/internal/wiremap"
	"github.com/xcomponent/xcomponent/wire"
)

// FuzzDecode feeds arbitrary fsm:events:* bodies to the decoder the distributed dashboard
// uses, as any publisher on the broker could send them. Properties:
//   - no panic; a refused body is an error naming the package (wiremap: or wire:);
//   - an accepted body names its instance;
//   - wire → engine → wire → engine loses nothing: the runtime event decoded from the
//     re-encoded envelope equals the first (the dashboard shows the same thing whether it
//     read a peer's message or a runtime re-published it).
func FuzzDecode(f *testing.F) {
	channels := []string{wire.ChannelStateChange, wire.ChannelInstanceCreated, wire.ChannelInstanceCompleted, wire.ChannelTimeoutTriggered}
	files, _ := filepath.Glob("testdata/ts_*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, ch := range channels {
			f.Add(ch, b)
		}
	}
	for _, s := range []string{
		`{"runtimeId":"r","componentName":"C","eventType":"state_change","timestamp":5,"causationId":"k","correlationId":"c",
		  "data":{"instanceId":"i","event":{"type":"E","payload":{"a":1},"actor":"alice","source":"api","causationId":"x","id":"e"},
		  "pendingTimeouts":[{"event":"T","dueAt":1e300,"remainingMs":-1,"kind":3}],"version":-2}}`,
		`{"data":{"instanceId":"i","pendingTimeouts":[{"dueAt":"x"},null,{}]}}`,
		`{"data":{"instanceId":""}}`, `{"data":null}`, `{}`, `[]`, `{"timestamp":1.5}`,
	} {
		for _, ch := range channels {
			f.Add(ch, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, channel string, body []byte) {
		in, err := wiremap.Decode(channel, body)
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "wiremap: ") && !strings.HasPrefix(msg, "wire: ") {
				t.Fatalf("error without the package's context: %v", err)
			}
			return
		}
		if in.Event.InstanceID == "" {
			t.Fatalf("accepted without an instance id: %s", body)
		}
		out, ok := wiremap.ToWire(in.Event, wiremap.Origin{RuntimeID: in.RuntimeID, RuntimeName: in.RuntimeName}, 0)
		if !ok || out.Channel != channel {
			t.Fatalf("decoded %s but re-encoded on %q (ok %v)", channel, out.Channel, ok)
		}
		b, err := wire.Encode(out.Envelope)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := wiremap.Decode(channel, b)
		if err != nil {
			t.Fatalf("re-encoded message refused: %v\n%s", err, b)
		}
		want, got := normalEvent(in.Event), normalEvent(again.Event)
		if !reflect.DeepEqual(want, got) || in.RuntimeID != again.RuntimeID || in.RuntimeName != again.RuntimeName {
			t.Fatalf("wire → engine → wire changed the event:\nfirst  %#v\nsecond %#v\nbody %s\nagain %s", want, got, body, b)
		}
	})
}

// normalEvent writes an absent event payload as an empty one (the protocol always sends one).
func normalEvent(ev xc.RuntimeEvent) xc.RuntimeEvent {
	fix := func(e *xc.Event) {
		if e.Payload == nil {
			e.Payload = map[string]any{}
		}
	}
	switch d := ev.Data.(type) {
	case xc.StateChanged:
		fix(&d.Event)
		ev.Data = d
	case xc.TimeoutFired:
		fix(&d.Event)
		ev.Data = d
	}
	return ev
}
