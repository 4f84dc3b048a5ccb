// Package bench holds the SDK's benchmarks against raw baselines: each pair
// runs our code path and the hand-rolled equivalent (bare Watermill, raw
// amqp091-go, hand-written database/sql, container/heap) side by side in the
// same run, so their ratio means something on a noisy machine.
//
// The package has no API; everything is in its _test.go files. Run them all
// with bench/run, which prints one line per pair:
//
//	name ours=X baseline=Y ratio=Z
//
// Benchmarks that need RabbitMQ or MySQL/MariaDB skip, with the reason, when
// WORKER_TEST_AMQP_URL or WORKER_TEST_MYSQL_DSN is unset. See README.md for
// the workloads, the measured results and their analysis.
package bench
