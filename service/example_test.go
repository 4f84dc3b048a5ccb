package service_test

import (
	"fmt"
	"os"

	"github.com/stratusworks/worker/service"
)

// Load a configuration with one override from the environment, its
// secret by reference; map it onto the SDK's configuration.
func Example() {
	file := []byte(`
mq:
  url: amqp://worker@mq.internal:5672/prod
  password: ${MQ_PASSWORD}
provisioning:
  source_cidr: 10.20.0.0/24
schedule:
  intervals:
    server: 1m
`)
	env := []string{"MQ_PASSWORD=s3cret", "WORKER_MQ_PREFETCH=256"}
	cfg, err := service.Parse("worker.yaml", file, env)
	if err != nil {
		fmt.Println(err)
		return
	}
	wc, closer, err := cfg.Worker()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closer.Close()
	fmt.Println("prefetch:", wc.MQ.Prefetch)
	fmt.Println("source:", wc.SourceCIDR)
	fmt.Println("server every", cfg.Interval("server", 0))

	// A bad value names the file, the key and the value.
	_, err = service.Parse("worker.yaml", []byte("provisioning:\n  source_cidr: 10.0.0.5/24\n"), nil)
	fmt.Println(err)
	// Output:
	// prefetch: 256
	// source: 10.20.0.0/24
	// server every 1m0s
	// worker.yaml:2: provisioning.source_cidr: "10.0.0.5/24" has host bits set (want the network 10.0.0.0/24, or 10.0.0.5/32 for this one address)
}

// Check prints the effective configuration; secrets are redacted.
func ExampleCheck() {
	file := []byte(`
allow_inline_secrets: true
mq:
  url: amqp://worker:hunter2@mq.internal:5672/prod
`)
	cfg, err := service.Parse("worker.yaml", file, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := service.Check(os.Stdout, cfg); err != nil {
		fmt.Println(err)
	}
	// Output:
	// # effective configuration of worker.yaml (defaults filled in, secrets redacted)
	// allow_inline_secrets: true
	// process:
	//   role: all
	//   concurrency: 64
	//   handler_timeout: 1m0s
	//   shutdown_timeout: 30s
	//   max_payload_bytes: 1048576
	// mq:
	//   url: amqp://worker:xxxxx@mq.internal:5672/prod
	//   prefix: worker
	//   consumers: 1
	//   prefetch: 128
	//   publish_timeout: 30s
	// provisioning_db:
	//   driver: sqlite
	//   dsn: worker.db
	//   max_open_conns: 4
	//   max_idle_conns: 4
	// state_store:
	//   migrations: auto
	//   deletion_grace: 5m0s
	//   launch_consistency_window: 2m0s
	// km:
	//   credential_cache_ttl: 5m0s
	// provisioning:
	//   management_port: 22
	//   job_check_interval: 10s
	//   job_timeout: 1h0m0s
	// logging:
	//   process_log: stderr
	//   level: info
	//   format: text
	//   customer_file_name: worker.log
	//   max_size_mb: 100
	//   max_backups: 10
	//   max_age_days: 30
	// pinger:
	//   interval: 30s
	//   probe_interval: 10s
	//   dead_after: 3
	// schedule:
	//   jitter: 0.1
	//   in_flight_timeout: 5m0s
	//   batch_size: 1000
	//   budget:
	//     per_second: 10
	//     burst: 20
	//   backoff:
	//     initial_interval: 5s
	//     max_interval: 15m0s
	//     multiplier: 2
	//   account_sync_interval: 5s
	//   lease_period: 15s
	//   shards: 64
	// retry:
	//   budget: 24h0m0s
	//   initial_interval: 100ms
	//   max_interval: 1h0m0s
	//   multiplier: 2
	//   jitter: 0.2
	//   inline_max: 1s
}
