// Package status gathers what a deployment of workers is doing from its
// provisioning database alone — instances from their heartbeats, failing
// and lagging polls from the schedules' persisted poll health, accounts
// throttled, failing or paused, jobs in flight and recently failed, poison
// counts by reason — and renders it as aligned tables for people or JSON
// for scripts. It reads only the database, so a short-lived command (the
// example binary's "status") can run it beside the workers.
package status
