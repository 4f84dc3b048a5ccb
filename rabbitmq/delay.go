package rabbitmq

import (
	"fmt"
	"time"
)

// delayBuckets are the delays PublishDelayed can wait, shortest first: about
// geometric (each about twice the one before) from 1s to 1h. Each has its
// own wait queue per topic, "<topic>.wait.<name>". doc.go lists them for
// operators: keep it in step.
var delayBuckets = [...]delayBucket{
	{time.Second, "1s"},
	{2 * time.Second, "2s"},
	{5 * time.Second, "5s"},
	{10 * time.Second, "10s"},
	{20 * time.Second, "20s"},
	{45 * time.Second, "45s"},
	{90 * time.Second, "90s"},
	{3 * time.Minute, "3m"},
	{7 * time.Minute, "7m"},
	{15 * time.Minute, "15m"},
	{30 * time.Minute, "30m"},
	{time.Hour, "1h"},
}

type delayBucket struct {
	delay time.Duration
	name  string
}

// bucketFor is the largest bucket not longer than delay; the shortest for
// shorter delays.
func bucketFor(delay time.Duration) delayBucket {
	b := delayBuckets[0]
	for _, c := range delayBuckets[1:] {
		if c.delay > delay {
			break
		}
		b = c
	}
	return b
}

// waitQueue is topic's wait queue for bucket b.
func waitQueue(topic string, b delayBucket) string { return topic + ".wait." + b.name }

// waitQueueFor returns the wait queue and bucket for a delay.
func waitQueueFor(topic string, delay time.Duration) (string, delayBucket, error) {
	b := bucketFor(delay)
	q := waitQueue(topic, b)
	if len(q) > maxQueueName {
		return "", b, fmt.Errorf("rabbitmq: PublishDelayed to %.40s…: its wait queue's name would be %d bytes, AMQP allows %d", topic, len(q), maxQueueName)
	}
	return q, b, nil
}
