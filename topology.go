package worker

import (
	"fmt"
	"sort"
	"strings"
)

// Queue is a class of work. Each queue is one topic on the transport (one
// durable queue on RabbitMQ), so polls never wait behind launches and events
// never wait behind either. The subscriber dispatches by action type inside a queue.
type Queue string

// The queues of the topology.
const (
	QueueActions Queue = "actions" // requests: server.launch, host-defined types (the default)
	QueuePolls   Queue = "polls"   // poll and job.check: frequent, cheap, droppable when stale
	QueueEvents  Queue = "events"  // state changes and job outcomes for other systems
	// QueueSchedule carries poll outcomes from subscribers back to the process
	// that holds the schedule (publishers). Only that process consumes it.
	QueueSchedule Queue = "schedule"
	// QueuePoison holds a copy of every poisoned action on RabbitMQ, with the
	// reason in its metadata, for tools that watch the broker. The poison store
	// (a database table) stays the source of truth for listing and replay. No
	// action type routes to it and no worker consumes it.
	QueuePoison Queue = "poison"
)

// Queues lists every queue of the topology in a fixed order.
var queues = [...]Queue{QueueActions, QueuePolls, QueueEvents, QueueSchedule, QueuePoison}

// DefaultRoutes maps the built-in action types to their queues. Types not
// listed go to QueueActions.
func DefaultRoutes() map[string]Queue {
	return map[string]Queue{
		"poll":        QueuePolls,
		"job.check":   QueuePolls,
		"guest.logs":  QueuePolls,
		"job.track":   QueueActions,
		"poll.report": QueueSchedule,
		"*.changed":   QueueEvents,
		"*.deleted":   QueueEvents,
		"job.*":       QueueEvents,
		TypeHeartbeat: QueueEvents,
	}
}

// Topology maps action types to queues and queues to topic names. Every
// publisher and subscriber of a deployment must use the same Topology.
type Topology struct {
	// Prefix is put before every topic name: "<Prefix>.<queue>". Default "worker".
	Prefix string
	// Routes maps action types to queues. A key is an exact type, a prefix
	// pattern "server.*", or a suffix pattern "*.changed". An exact match wins,
	// then the longest pattern. Unmatched types go to QueueActions. Default: DefaultRoutes().
	Routes map[string]Queue

	patterns []route // sorted longest first, built by compile
}

type route struct {
	prefix, suffix string
	q              Queue
}

func (t *Topology) setDefaults() {
	if t.Prefix == "" {
		t.Prefix = "worker"
	}
	if t.Routes == nil {
		t.Routes = DefaultRoutes()
	}
}

// Validate checks the prefix and the routes.
func (t Topology) Validate() error {
	if t.Prefix != "" && !validType(t.Prefix) {
		return configError("Topology.Prefix", "%q must be lower-case letters, digits and . _ -", t.Prefix)
	}
	for k, q := range t.Routes {
		if q != QueueActions && q != QueuePolls && q != QueueEvents && q != QueueSchedule {
			return configError("Topology.Routes", "[%q] = %q is not a queue (want actions, polls, events or schedule)", k, q)
		}
		pat := strings.TrimSuffix(strings.TrimPrefix(k, "*"), "*")
		if strings.Count(k, "*") > 1 || (pat != "" && !validType(strings.Trim(pat, "."))) || pat == "" {
			return configError("Topology.Routes", "key %q must be an action type, \"prefix.*\" or \"*.suffix\"", k)
		}
	}
	return nil
}

func (t *Topology) compile() {
	t.patterns = []route{}
	for k, q := range t.Routes {
		switch {
		case strings.HasSuffix(k, "*"):
			t.patterns = append(t.patterns, route{prefix: strings.TrimSuffix(k, "*"), q: q})
		case strings.HasPrefix(k, "*"):
			t.patterns = append(t.patterns, route{suffix: strings.TrimPrefix(k, "*"), q: q})
		}
	}
	sort.Slice(t.patterns, func(i, j int) bool {
		li, lj := len(t.patterns[i].prefix+t.patterns[i].suffix), len(t.patterns[j].prefix+t.patterns[j].suffix)
		if li != lj {
			return li > lj
		}
		return t.patterns[i].prefix+"|"+t.patterns[i].suffix < t.patterns[j].prefix+"|"+t.patterns[j].suffix
	})
}

// QueueFor returns the queue an action type is published to.
func (t Topology) QueueFor(actionType string) Queue {
	if q, ok := t.Routes[actionType]; ok {
		return q
	}
	pats := t.patterns
	if pats == nil && len(t.Routes) > 0 {
		c := t
		c.compile()
		pats = c.patterns
	}
	for _, r := range pats {
		if strings.HasPrefix(actionType, r.prefix) && strings.HasSuffix(actionType, r.suffix) {
			return r.q
		}
	}
	return QueueActions
}

// Topic returns the transport topic (RabbitMQ queue name) of a queue.
func (t Topology) Topic(q Queue) string { return t.Prefix + "." + string(q) }

// Topics returns the topics of every queue.
func (t Topology) Topics() []string {
	out := make([]string, 0, len(queues))
	for _, q := range queues {
		out = append(out, t.Topic(q))
	}
	return out
}

// queueOfTopic is the inverse of Topic.
func (t Topology) queueOfTopic(topic string) (Queue, error) {
	for _, q := range queues {
		if t.Topic(q) == topic {
			return q, nil
		}
	}
	return "", fmt.Errorf("worker: topic %q is not one of %v", topic, t.Topics())
}
