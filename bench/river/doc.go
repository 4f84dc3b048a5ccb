// Package river is the peer of bench pair 7: River (riverqueue) on SQLite
// doing the work that BenchmarkEmbedded and BenchmarkEmbeddedDurable in
// ../ do on the SDK's durable SQLite queue. It is its own module because
// River's SQLite driver wants a newer SQLite (modernc.org/sqlite) than the
// SDK pins; bench/run builds and runs it in the same rounds as the rest.
package river
