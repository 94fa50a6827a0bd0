package distributed_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/bus/rabbitmq"
	"github.com/xcomponent/xcomponent/distributed"
	"github.com/xcomponent/xcomponent/distributed/distributedtest"
	"github.com/xcomponent/xcomponent/wire"
)

// Two runtimes without a shared database (each its own SQLite file: two machines): each owns
// the instances it created, and a command that reaches the other one (its partition moved
// when the second runtime joined) is handed to the owner and applied there, once.
func TestEmbeddedStoresCommandsReachTheOwner(t *testing.T) {
	url := vhost(t)
	client, err := rabbitmq.New(rabbitmq.Options{URL: url, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ocA, ocB := &outcomes{n: map[string]int{}}, &outcomes{n: map[string]int{}}
	cfg := func(name string, oc *outcomes) distributed.Config {
		return distributed.Config{ComponentFile: filepath.Join("testdata", "approval.yaml"), BrokerURL: url,
			StoreSpec: "sqlite:" + filepath.Join(t.TempDir(), name+".db"), RuntimeName: name, Port: freePort(t),
			HeartbeatInterval: 200 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
			Logger: logger(t), OnCommand: oc.add}
	}
	create := func() string {
		id := uuid.NewString()
		publish(t, client, wire.ChannelCreateInstance, wire.CreateInstance{ComponentName: component, Timestamp: wire.Now()}, id)
		return bus.CreateInstanceID(id)
	}
	a := distributedtest.Start(t, cfg("owner-a", ocA))
	const n = 20
	var ofA []string
	for range n {
		ofA = append(ofA, create())
	}
	eventually(t, "A created its instances", func() bool {
		return ocA.count(wire.ChannelCreateInstance, distributed.OutcomeApplied) == n
	})

	// B joins and takes over some partitions: it creates instances of its own.
	b := distributedtest.Start(t, cfg("owner-b", ocB))
	for i := 0; ocB.count(wire.ChannelCreateInstance, distributed.OutcomeApplied) == 0; i++ {
		if i == 200 {
			t.Fatal("B never became active on a partition")
		}
		create()
		time.Sleep(20 * time.Millisecond) // pacing the creates while the partitions move, not a synchronisation
	}

	for _, id := range ofA {
		publish(t, client, wire.ChannelTriggerEvent, wire.TriggerEvent{ComponentName: component, InstanceID: id,
			Event: wire.Event{Type: "SUBMIT"}}, uuid.NewString())
	}
	eventually(t, "every SUBMIT applied by A, the owner", func() bool {
		return ocA.count(wire.ChannelTriggerEvent, distributed.OutcomeApplied) == n
	})
	forwarded := ocB.count(wire.ChannelTriggerEvent, distributed.OutcomeIgnored)
	if forwarded == 0 {
		t.Error("no SUBMIT went through B: the test did not exercise the hand-over")
	}
	if got := ocB.count(wire.ChannelTriggerEvent, distributed.OutcomeApplied, distributed.OutcomeRefused); got != 0 {
		t.Errorf("B applied or refused %d SUBMITs of A's instances", got)
	}
	baseA, baseB := "http://"+a.Info.Addr.String(), "http://"+b.Info.Addr.String()
	for _, id := range ofA {
		code, body := get(t, baseA+"/api/instances/"+id+"/history")
		if code != 200 || strings.Count(body, `"type":"SUBMIT"`) != 1 {
			t.Errorf("A's instance %s: %d, history %s", id, code, body)
		}
		if code, _ := get(t, baseB+"/api/instances/"+id); code != 404 {
			t.Errorf("A's instance %s found in B's store (%d)", id, code)
		}
	}
	var list struct {
		Instances []json.RawMessage `json:"instances"`
	}
	_, body := get(t, baseB+"/api/instances")
	_ = json.Unmarshal([]byte(body), &list)
	t.Logf("%d of A's %d SUBMITs reached B and were handed to A; B owns %d instances", forwarded, n, len(list.Instances))
}

// Alone, a runtime with an embedded store refuses a command for an instance it does not hold
// (not found), instead of handing it to owners that do not exist.
func TestEmbeddedStoreAloneRefusesUnknownInstances(t *testing.T) {
	url := vhost(t)
	client, err := rabbitmq.New(rabbitmq.Options{URL: url, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	oc := &outcomes{n: map[string]int{}}
	distributedtest.Start(t, distributed.Config{ComponentFile: filepath.Join("testdata", "approval.yaml"), BrokerURL: url,
		StoreSpec: "sqlite:" + filepath.Join(t.TempDir(), "alone.db"), RuntimeName: "alone", Logger: logger(t), OnCommand: oc.add})
	publish(t, client, wire.ChannelTriggerEvent, wire.TriggerEvent{ComponentName: component, InstanceID: uuid.NewString(),
		Event: wire.Event{Type: "SUBMIT"}}, uuid.NewString())
	eventually(t, "the SUBMIT refused", func() bool {
		return oc.count(wire.ChannelTriggerEvent, distributed.OutcomeRefused) == 1
	})
	if n := oc.count(wire.ChannelTriggerEvent, distributed.OutcomeIgnored); n != 0 {
		t.Errorf("%d commands forwarded by a runtime alone", n)
	}
}
