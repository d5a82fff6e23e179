// Package testkit gives herald's tests the backends they run against and the
// helpers they wait with.
//
// Every integration test gets Kafka and Redis from here, so that the same
// test runs against two backends (STYLE habit 9):
//
//   - embedded, the default: an in-process kfake cluster and a miniredis per
//     test, so `go test ./...` needs nothing installed;
//   - real, when HERALD_TEST_KAFKA and HERALD_TEST_REDIS are set, as `make
//     test` does after starting Apache Kafka and redis-server with the
//     scripts in deploy/local.
//
// A real broker and Redis are shared by every test of every package of a run
// (packages run in parallel) and by earlier runs, so nothing here assumes an
// empty backend: topic and group names come from Topic, TopicPrefix and
// Unique, and each Redis gets a database of its own for the test's life.
//
// Helpers that fail the test (t.Fatalf) must be called from the test's own
// goroutine, like t.FailNow.
package testkit
