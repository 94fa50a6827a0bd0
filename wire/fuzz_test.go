package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bodies to the decoder of every channel, as a peer with broker
// credentials could publish them. Properties:
//   - no panic; a refused body is a "wire: decode <type>: …" error and a zero value;
//   - what is decoded re-encodes, and decoding that again gives the same bytes once more
//     (nothing is lost or changed by a second trip through the protocol);
//   - DecodeExact accepts exactly what Decode accepts, and keeps the contexts, payloads and
//     matching rule values of commands exactly as sent (numbers as their literal), so that the
//     engine can refuse an integer it could not keep instead of storing it rounded.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("../internal/wiremap/testdata/*.json")
	for _, file := range seeds {
		if b, err := os.ReadFile(file); err == nil {
			for _, ch := range append(Channels(), OurChannels()...) {
				f.Add(ch, b)
			}
		}
	}
	samples := map[string]any{
		ChannelAnnounce:     Announce{RuntimeID: "r1", ComponentName: "Orders", Component: json.RawMessage(`{"name":"Orders", "stateMachines":[]}`), Host: "h", Port: 3000},
		ChannelTriggerEvent: TriggerEvent{ComponentName: "Orders", InstanceID: "i1", Event: ev, Trace: tr},
		ChannelCreateInstance: CreateInstance{ComponentName: "Orders", MachineName: "Order", Context: map[string]any{"orderId": "o-1", "n": 3.5},
			Event: &ev, Trace: tr},
		ChannelCrossComponentEvent: CrossComponentEvent{TargetComponent: "Orders", TargetMachine: "Order", Event: ev,
			MatchingRules: []MatchingRule{{EventProperty: "orderId", InstanceProperty: "id", Operator: "===", Value: "o-1"}}},
		ChannelQueryResponse: QueryResponse{Type: TypeInstances, RuntimeID: "r1", Instances: []InstanceSnapshot{{ID: "i1",
			Context: map[string]any{"a": []any{1.0, "x", nil}}, PendingTimeouts: []PendingTimeout{{"event": "T", "dueAt": 1.7e12}}}}},
		ChannelTerminateInstance: OperatorCommand{ComponentName: "Orders", InstanceID: "i1", Actor: "ops", Reason: "stuck", Trace: tr},
		ChannelRetryHook:         OperatorCommand{InstanceID: "i1", Actor: "ops", Trace: tr},
		ChannelCommandReply:      CommandReply{Type: TypeCommandReply, CommandID: "c", Status: ReplyRefused, Error: "no", Code: "invalid"},
	}
	for ch, v := range samples {
		b, err := Encode(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ch, b)
	}
	for _, s := range []string{
		`{"componentName":"Orders","context":{"n":9007199254740993,"f":1.0,"e":1e2,"neg":-0}}`,
		`{"instanceId":"i","event":{"type":"E","payload":{"big":123456789012345678901234567890}}}`,
		`{"targetComponent":"T","event":{"type":"E"},"matchingRules":[{"instanceProperty":"n","operator":">","value":18446744073709551617}]}`,
		`{"context":{"a":1},"context":{"b":2}}`,
		`{"context":{"a":"\u0000"}}`,
		`{"timestamp":1e400}`, `{"context":{"x":1e400}}`, `{"port":1.5}`, `[]`, `null`, `"x"`, `{} {}`, `{"a":[[[[[[[[]]]]]]]]}`,
	} {
		f.Add(ChannelCreateInstance, []byte(s))
		f.Add(ChannelTriggerEvent, []byte(s))
		f.Add(ChannelCrossComponentEvent, []byte(s))
	}
	f.Fuzz(func(t *testing.T, channel string, body []byte) {
		switch channel {
		case ChannelAnnounce:
			check[Announce](t, body, nil)
		case ChannelHeartbeat:
			check[Heartbeat](t, body, nil)
		case ChannelShutdown:
			check[Shutdown](t, body, nil)
		case ChannelDiscover:
			check[Discover](t, body, nil)
		case ChannelQueryInstances:
			check[QueryInstances](t, body, nil)
		case ChannelQueryResponse:
			check[QueryResponse](t, body, nil)
		case ChannelStateChange:
			check[StateChange](t, body, nil)
		case ChannelInstanceCreated:
			check[InstanceCreated](t, body, nil)
		case ChannelInstanceCompleted:
			check[InstanceCompleted](t, body, nil)
		case ChannelTimeoutTriggered:
			check[TimeoutTriggered](t, body, nil)
		case ChannelCommandReply:
			check[CommandReply](t, body, nil)
		case ChannelTerminateInstance, ChannelRetryHook:
			check[OperatorCommand](t, body, nil)
		case ChannelTriggerEvent:
			check(t, body, func(v TriggerEvent) []part {
				return []part{{[]string{"event", "payload"}, v.Event.Payload}}
			})
		case ChannelCreateInstance:
			check(t, body, func(v CreateInstance) []part {
				parts := []part{{[]string{"context"}, v.Context}}
				if v.Event != nil {
					parts = append(parts, part{[]string{"event", "payload"}, v.Event.Payload})
				}
				return parts
			})
		case ChannelCrossComponentEvent:
			check(t, body, func(v CrossComponentEvent) []part {
				parts := []part{{[]string{"event", "payload"}, v.Event.Payload}, {[]string{"matchContext"}, v.MatchContext}}
				for i, r := range v.MatchingRules {
					parts = append(parts, part{[]string{"matchingRules", strconv.Itoa(i), "value"}, r.Value})
				}
				return parts
			})
		default:
			check[Envelope[json.RawMessage]](t, body, nil)
		}
	})
}

// part is an untyped part of a decoded command (a context, a payload, a rule's value) and
// where it is in the body.
type part struct {
	path  []string
	value any
}

// check asserts the properties of FuzzDecode for messages of type T. untyped, when set,
// returns the untyped parts of a decoded command.
func check[T any](t *testing.T, body []byte, untyped func(T) []part) {
	v, err := Decode[T](body)
	exact, exactErr := DecodeExact[T](body)
	var zero T
	for _, e := range []error{err, exactErr} {
		if e != nil && !strings.HasPrefix(e.Error(), "wire: decode ") {
			t.Fatalf("error without the package's context: %v", e)
		}
	}
	if err != nil && !reflect.DeepEqual(v, zero) || exactErr != nil && !reflect.DeepEqual(exact, zero) {
		t.Fatalf("a refused body gave a non-zero value: %#v / %#v", v, exact)
	}
	switch {
	case exactErr != nil && err == nil:
		t.Fatalf("DecodeExact refused what Decode accepts: %v\n%q", exactErr, body)
	case err != nil && exactErr == nil && !strings.Contains(err.Error(), "cannot unmarshal number"):
		// Only a number beyond float64 goes through DecodeExact (the engine refuses it).
		t.Fatalf("DecodeExact accepted what Decode refuses: %v\n%q", err, body)
	}
	if err == nil {
		reencode(t, v, Decode[T])
	}
	if exactErr != nil {
		return
	}
	reencode(t, exact, DecodeExact[T])
	if untyped == nil {
		return
	}
	// The untyped parts as DecodeExact gives them must be those of the body, literal for
	// literal (unless an object repeats a key: repeated keys merge into a decoded map).
	ref, dup := decodeTree(body)
	if dup {
		return
	}
	for _, p := range untyped(exact) {
		want := lookup(ref, p.path)
		if !reflect.DeepEqual(normal(want), normal(p.value)) {
			t.Fatalf("DecodeExact changed %s of %T:\n got %#v\nwant %#v\nbody %s", strings.Join(p.path, "."), exact, p.value, want, body)
		}
	}
}

// reencode checks that v, decoded with decode, goes through the protocol again unchanged.
func reencode[T any](t *testing.T, v T, decode func([]byte) (T, error)) {
	b1, err := Encode(v)
	if err != nil {
		t.Fatalf("decoded %T does not encode: %v", v, err)
	}
	v2, err := decode(b1)
	if err != nil {
		t.Fatalf("encoded %T does not decode: %v\n%s", v, err, b1)
	}
	b2, err := Encode(v2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("second round trip of %T changed the message:\n%s\n%s", v, b1, b2)
	}
}

// lookup follows path in an untyped tree; object keys match case-insensitively, as struct
// fields do in encoding/json.
func lookup(v any, path []string) any {
	for _, k := range path {
		switch x := v.(type) {
		case map[string]any:
			v = nil
			for key, e := range x {
				if fold(key) == fold(k) {
					v = e
				}
			}
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func fold(s string) string { return strings.ToLower(strings.ToUpper(s)) }

// normal makes empty and nil maps alike (a missing payload decodes as nil, {} as empty).
func normal(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 0 {
		return nil
	}
	return v
}

// decodeTree decodes body as an untyped tree with exact numbers, and reports whether an
// object repeats a key.
func decodeTree(body []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	v, dup, err := treeValue(dec)
	if err != nil {
		return nil, true
	}
	return v, dup
}

func treeValue(dec *json.Decoder) (any, bool, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, false, err
	}
	switch d := tok.(type) {
	case json.Delim:
		switch d {
		case '{':
			m, dup, folded := map[string]any{}, false, map[string]struct{}{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, false, err
				}
				k, _ := kt.(string)
				v, d2, err := treeValue(dec)
				if err != nil {
					return nil, false, err
				}
				if _, seen := folded[fold(k)]; seen {
					dup = true
				}
				folded[fold(k)] = struct{}{}
				m[k], dup = v, dup || d2
			}
			_, err := dec.Token()
			return m, dup, err
		case '[':
			l, dup := []any{}, false
			for dec.More() {
				v, d2, err := treeValue(dec)
				if err != nil {
					return nil, false, err
				}
				l, dup = append(l, v), dup || d2
			}
			_, err := dec.Token()
			return l, dup, err
		}
		return nil, false, errors.New("unexpected delimiter")
	}
	return tok, false, nil
}
