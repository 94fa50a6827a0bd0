package distributed

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xcomponent/xcomponent/bus"
	"github.com/xcomponent/xcomponent/internal/telemetry"
)

// Consumers of a runtime (the queue label of the command metrics and of the consume spans).
const (
	queuePartition = "partition"       // the component's partition queues
	queueIngress   = "ingress"         // the xcomponent-ai channels, re-published to the partitions
	queueCross     = "cross_component" // fsm:commands:cross_component_event
)

// Bounds of the scrape-time outbox gauges.
const (
	outboxScrapeLimit   = 10_000
	outboxScrapeTimeout = 2 * time.Second
	// timerOverdue is how late a due timer must be to count as overdue: past the takeover
	// delay, another runtime should have fired it.
	timerOverdue = 5 * time.Second
)

// runtimeMetrics are the metrics of the distributed mode. Every label value is bounded by
// the configuration: the runtime's own component, one of three queues, a partition index
// below Config.Partitions; none comes from a message.
type runtimeMetrics struct {
	consumed, acked, nacked, deadLettered *prometheus.CounterVec // {component, queue}
	partitionCommands                     *prometheus.CounterVec // {component, partition}
	partitionConsumer                     *prometheus.GaugeVec   // {component, partition}
	reconnections                         atomic.Int64
	connectedOnce                         atomic.Bool
}

func newRuntimeMetrics() *runtimeMetrics {
	labels := []string{"component", "queue"}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	return &runtimeMetrics{
		consumed: counter("runtime_commands_consumed_total", "Messages received by this runtime's command consumers, by queue (partition, ingress, cross_component)."),
		acked:    counter("runtime_commands_acked_total", "Messages acknowledged after their effect was committed (or refused, or a duplicate)."),
		nacked: counter("runtime_commands_nacked_total",
			"Messages left unacknowledged because the runtime stopped or lost the partition meanwhile: the broker redelivers them to another runtime."),
		deadLettered: counter("runtime_commands_dead_lettered_total", "Messages sent to the dead-letter queue (malformed, never applicable)."),
		partitionCommands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "runtime_partition_commands_total",
			Help: "Commands consumed from each partition queue by this runtime (the active consumer of a partition is the runtime whose counter grows)."},
			[]string{"component", "partition"}),
		partitionConsumer: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "runtime_partition_consumer",
			Help: "1 while this runtime has a consumer registered on the partition queue (the broker makes one of the registered consumers active)."},
			[]string{"component", "partition"}),
	}
}

// brokerState counts the reconnections (every connection after the first).
func (m *runtimeMetrics) brokerState(connected bool) {
	if connected && m.connectedOnce.Swap(true) {
		m.reconnections.Add(1)
	}
}

// register adds the metrics to reg, with every series of the component at zero.
func (m *runtimeMetrics) register(reg prometheus.Registerer, r *runtime) {
	comp := r.comp.Name
	for _, q := range []string{queuePartition, queueIngress, queueCross} {
		for _, v := range []*prometheus.CounterVec{m.consumed, m.acked, m.nacked, m.deadLettered} {
			v.WithLabelValues(comp, q)
		}
	}
	for i := range r.cfg.Partitions {
		p := strconv.Itoa(i)
		m.partitionCommands.WithLabelValues(comp, p)
		m.partitionConsumer.WithLabelValues(comp, p)
	}
	constLabels := prometheus.Labels{"component": comp}
	reg.MustRegister(m.consumed, m.acked, m.nacked, m.deadLettered, m.partitionCommands, m.partitionConsumer,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "runtime_broker_reconnections_total",
			Help: "Connections to the broker re-established after a loss.", ConstLabels: constLabels},
			func() float64 { return float64(m.reconnections.Load()) }),
		&outboxCollector{r: r,
			backlog: prometheus.NewDesc("runtime_outbox_backlog",
				"Undelivered messages in the component's outbox (counted up to 10000).", nil, constLabels),
			age: prometheus.NewDesc("runtime_outbox_oldest_age_seconds",
				"Age of the oldest undelivered message of the component's outbox (0 when empty).", nil, constLabels),
			failed: prometheus.NewDesc("runtime_outbox_scrape_failed",
				"1 when the outbox could not be read at the last scrape.", nil, constLabels)},
		&timerCollector{r: r,
			due: prometheus.NewDesc("runtime_timers_due",
				"Timers of this runtime's live instances whose deadline has passed and that have not fired yet.", nil, constLabels),
			overdue: prometheus.NewDesc("runtime_timers_overdue",
				"Due timers more than 5s late (their instance's runtime may be gone: another runtime takes them over).", nil, constLabels)},
	)
}

// handler wraps the handler of one of the runtime's consumers: counts and, when tracing is
// on, a span per message (a child of the trace context of its headers; a new trace when it
// has none, as xcomponent-ai's messages). partition is the partition index, or -1.
func (r *runtime) handler(queue string, partition int, h bus.Handler) bus.Handler {
	m, comp, tp := r.metrics, r.comp.Name, r.cfg.TracerProvider
	consumed, acked := m.consumed.WithLabelValues(comp, queue), m.acked.WithLabelValues(comp, queue)
	nacked, dead := m.nacked.WithLabelValues(comp, queue), m.deadLettered.WithLabelValues(comp, queue)
	var partCommands prometheus.Counter
	if partition >= 0 {
		partCommands = m.partitionCommands.WithLabelValues(comp, strconv.Itoa(partition))
	}
	return func(ctx context.Context, msg bus.Message) error {
		consumed.Inc()
		if partCommands != nil {
			partCommands.Inc()
		}
		var err error
		if tp == nil {
			err = h(ctx, msg)
		} else {
			name := msg.Channel
			if c := msg.Headers[bus.HeaderCommand]; c != "" {
				name = c // a partition's command: its protocol channel
			}
			sctx, span := telemetry.StartConsume(ctx, tp, name, msg.MessageID, msg.Headers)
			span.SetAttributes(telemetry.AttrComponent.String(comp), telemetry.AttrRuntime.String(r.cfg.RuntimeName),
				telemetry.AttrQueue.String(queue))
			err = h(sctx, msg)
			telemetry.End(span, err)
		}
		switch {
		case err == nil:
			acked.Inc()
		case ctx.Err() != nil: // the subscription is closing: the bus leaves it unacknowledged
			nacked.Inc()
		default:
			dead.Inc()
		}
		return err
	}
}

// outboxCollector reads the component's outbox at scrape time.
type outboxCollector struct {
	r                    *runtime
	backlog, age, failed *prometheus.Desc
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.age
	ch <- c.failed
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), outboxScrapeTimeout)
	defer cancel()
	rows, err := c.r.store.PendingOutbox(ctx, c.r.comp.Name, outboxScrapeLimit)
	age := 0.0
	if len(rows) > 0 { // oldest first
		age = max(0, time.Since(time.UnixMilli(rows[0].CreatedAt)).Seconds())
	}
	failed := 0.0
	if err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(len(rows)))
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.GaugeValue, failed)
}

// timerCollector counts the due and overdue timers of the engine's live instances.
type timerCollector struct {
	r            *runtime
	due, overdue *prometheus.Desc
}

func (c *timerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.due; ch <- c.overdue }

func (c *timerCollector) Collect(ch chan<- prometheus.Metric) {
	due, overdue := c.r.eng.DueTimers(time.Now(), timerOverdue)
	ch <- prometheus.MustNewConstMetric(c.due, prometheus.GaugeValue, float64(due))
	ch <- prometheus.MustNewConstMetric(c.overdue, prometheus.GaugeValue, float64(overdue))
}
