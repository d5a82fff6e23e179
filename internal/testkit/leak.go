package testkit

import "go.uber.org/goleak"

// LeakOptions are the goleak options every herald TestMain passes:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testkit.LeakOptions()...) }
//
// They ignore only goroutines that outlive Close by design in libraries the
// tests use, never herald's own.
func LeakOptions() []goleak.Option {
	return nil
}
