package bus

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/google/uuid"
)

// Partitioned command queues.
//
// The commands of component C (create_instance, trigger_event) are applied by C's runtimes
// from Partitions(C) durable queues, PartitionQueue(C, n, i), each with a single active
// consumer: one runtime drains a partition at a time and another takes over when it dies, so
// the commands of one instance, always routed to the same partition, are applied in the order
// they were published (the Kafka partition / Akka shard model, on RabbitMQ's
// single-active-consumer).
//
// Publishers do not need to know a component's partition count: a command for instance id is
// published on CommandChannel(C, id), whose routing key names one of Buckets fixed buckets
// (a hash of the instance id); partition i of n binds the buckets b with b mod n = i. The
// command's kind travels in the HeaderCommand header (the xcomponent-ai channel it would have
// been published on), its instance in HeaderInstance. PublishCommand does all of it.
//
// A create_instance command gets its instance id before it is routed (CreateInstanceID of the
// command id when the publisher has none), so that it lands in the partition of the instance's
// later commands and a redelivery cannot create a second instance.

// Buckets is the number of routing buckets of every component's commands; a component has at
// most Buckets partitions.
const Buckets = 128

// DefaultPartitions is the default number of partition queues per component.
const DefaultPartitions = 8

// Headers of a command on a partition channel.
const (
	// HeaderCommand is the command's kind: the xcomponent-ai channel
	// (wire.ChannelCreateInstance, wire.ChannelTriggerEvent).
	HeaderCommand = "xc-command"
	// HeaderInstance is the id of the instance the command is for.
	HeaderInstance = "xc-instance"
	// HeaderReply set to ReplyNone asks the runtime not to answer the command on
	// fsm:responses:command: its publisher does not wait for the outcome (the publisher
	// confirm told it the command is queued; the runtime events tell what became of it).
	// Commands without it are answered when they carry an id.
	HeaderReply = "xc-reply"
	// ReplyNone is the value of HeaderReply that turns the reply off.
	ReplyNone = "none"
	// HeaderAttempt identifies one publication of a command by its publisher; the runtime
	// echoes it in its reply (wire.CommandReply.Attempt). Every dashboard reads every reply,
	// and two of them may send the same command id (an Idempotency-Key retried through
	// another dashboard): the attempt tells a publisher its own answer from the other's.
	HeaderAttempt = "xc-attempt"
)

// Bucket is the routing bucket of an instance id.
func Bucket(instanceID string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(instanceID))
	return int(h.Sum32() % Buckets)
}

// CommandChannel is the channel a command for an instance of component is published on:
// "xcomponent:cmd:<component>:<bucket>".
func CommandChannel(component, instanceID string) string {
	return bucketChannel(component, Bucket(instanceID))
}

func bucketChannel(component string, bucket int) string {
	return "xcomponent:cmd:" + component + ":" + strconv.Itoa(bucket)
}

// PartitionQueue is the name of partition i of the n partitions of component's commands,
// "xcomponent.<component>.commands.<i>of<n>".
func PartitionQueue(component string, n, i int) string {
	return fmt.Sprintf("%s.%dof%d", CommandQueue(component), i, n)
}

// PartitionBindings are the channels partition i of n binds: the buckets b with b mod n = i.
func PartitionBindings(component string, n, i int) []string {
	var out []string
	for b := i; b < Buckets; b += n {
		out = append(out, bucketChannel(component, b))
	}
	return out
}

// Partition is the partition (of n) an instance's commands go to.
func Partition(instanceID string, n int) int { return Bucket(instanceID) % n }

// PartitionsQueue is the marker queue of a component's partitioning: it exists once a runtime
// of the component declared its partitions (so a command for a component that never ran can
// be refused at once), and its declaration carries the partition count, so that a runtime
// configured with another count is refused by the broker instead of splitting the commands.
func PartitionsQueue(component string) string { return "xcomponent." + component + ".partitions" }

// createIDSpace derives instance ids from command ids.
var createIDSpace = uuid.MustParse("3d6a1c8e-5f0b-4b7e-9c2a-7e4f1a0b9d53")

// CreateInstanceID is the id of the instance a create_instance command creates when its
// publisher fixed none: derived from the command id, so that every delivery of the command
// names the same instance.
func CreateInstanceID(commandID string) string {
	return uuid.NewSHA1(createIDSpace, []byte(commandID)).String()
}

// CommandIDSpace derives a UUID from a command id that is not one (the store's event ids are
// UUIDs): the same id always gives the same UUID, so dedupe still works.
var CommandIDSpace = uuid.MustParse("6f1c5a1e-0b7e-4c38-9a55-3d1f1b0c2a10")

// CommandEventID is the id under which a runtime of ours records what a command did (its
// audit entry in fsm_events, its inbox row): the command id in canonical form when it is a
// UUID, else the UUID derived from it in CommandIDSpace.
func CommandEventID(commandID string) string {
	if commandID == "" {
		return ""
	}
	if u, err := uuid.Parse(commandID); err == nil {
		return u.String()
	}
	return uuid.NewSHA1(CommandIDSpace, []byte(commandID)).String()
}

// PublishCommand publishes a command (body: a wire.CreateInstance or wire.TriggerEvent, kind:
// its xcomponent-ai channel) for an instance of component straight to its partition. A
// create_instance body must carry instanceId (CreateInstanceID(commandID) when the caller
// has no id of its own). meta.MessageID should be the command id.
func PublishCommand(ctx context.Context, b Bus, component, instanceID, kind string, body []byte, meta Meta) error {
	if instanceID == "" {
		return fmt.Errorf("bus: %s command for component %s without an instance id", kind, component)
	}
	return b.Publish(ctx, CommandChannel(component, instanceID), body, commandMeta(meta, kind, instanceID))
}

// IngressQueue is the queue through which commands published on the xcomponent-ai channels
// (by a TS dashboard or runtime) reach the partitions: one runtime at a time reads it and
// re-publishes each command to its partition.
const IngressQueue = "xcomponent.commands.ingress"
