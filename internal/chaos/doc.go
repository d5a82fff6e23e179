// Package chaos is herald's fault suite: it runs the built herald binary as
// separate processes against real Kafka and Redis, injects faults — kill -9
// of an instance, a broker restart, a Redis outage, subscribers that fail at
// random or drop connections, a SIGTERM in the middle of a stream — and
// checks with a counting receiver that every expected delivery was
// acknowledged at least once, reporting duplicates.
//
// The package holds only tests. They need a real broker (HERALD_TEST_KAFKA,
// which `make test` sets) and skip otherwise: an embedded broker cannot be
// restarted from outside. HERALD_CHAOS_SIZE=full (`make chaos`) runs the
// issue's sizes; the default is a small run that fits in `make test`.
package chaos
