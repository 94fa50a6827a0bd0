// Package bench holds benchmarks that need a real database: BenchmarkDurableTransition
// measures durable transitions per second through the engine on SQLite and on PostgreSQL.
// The package has no code of its own; see bench_test.go and docs/benchmarks.md.
package bench
