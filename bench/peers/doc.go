// Package peers holds the peers' side of the bench pairs that compare the
// worker with other job queues in the same run (bench/run): River on
// PostgreSQL (its batch insert, and end to end with one durable row per
// job) and asynq on Redis (end to end with one durable row per task, in
// MariaDB as ours). It is a module of its own so that the peers'
// dependencies (pgx, go-redis) stay out of the SDK's and the bench
// module's.
//
// The services are found, never started: BENCH_PG_URL (bench/run sets
// postgres://postgres@127.0.0.1:5432/postgres when that port answers),
// BENCH_REDIS_ADDR (127.0.0.1:6379) and WORKER_TEST_MYSQL_DSN. A
// benchmark whose service is absent skips with the reason.
package peers
