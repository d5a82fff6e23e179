package testkit

import (
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, LeakOptions()...)
}

// recorder is a testing.TB whose Cleanup and Fatalf the test controls:
// cleanups run when the test says, and Fatalf ends only the calling
// goroutine, so helpers' failures can be asserted.
type recorder struct {
	testing.TB

	mu       sync.Mutex
	cleanups []func()
	failures []string
}

func newRecorder(t testing.TB) *recorder { return &recorder{TB: t} }

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.failures = append(r.failures, format)
	r.mu.Unlock()
	r.TB.Logf("(expected) "+format, args...)
	runtime.Goexit()
}

// runCleanups runs the registered cleanups, last first, like testing does.
func (r *recorder) runCleanups() {
	r.mu.Lock()
	fns := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

func (r *recorder) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.failures) > 0
}

// inGoroutine runs f on its own goroutine, so that a Fatalf's Goexit ends
// only f, and waits for it.
func inGoroutine(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}
