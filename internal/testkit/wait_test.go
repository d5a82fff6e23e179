package testkit

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestEventuallyReturnsOnceTrue(t *testing.T) {
	var calls atomic.Int32
	Eventually(t, 5*time.Second, func() bool { return calls.Add(1) >= 3 })
	if calls.Load() != 3 {
		t.Fatalf("cond called %d times, want 3", calls.Load())
	}
}

func TestEventuallyFailsWithMessage(t *testing.T) {
	rec := &messageRecorder{recorder: newRecorder(t)}
	start := time.Now()
	inGoroutine(func() {
		Eventually(rec, 50*time.Millisecond, func() bool { return false }, "%d deliveries to %s", 3, "sub_1")
	})
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("gave up after %v, before the timeout", d)
	}
	if !strings.Contains(rec.msg, "3 deliveries to sub_1") || !strings.Contains(rec.msg, "50ms") {
		t.Fatalf("failure message %q lacks the description or the timeout", rec.msg)
	}
}

type messageRecorder struct {
	*recorder
	msg string
}

func (m *messageRecorder) Fatalf(format string, args ...any) {
	m.msg = fmt.Sprintf(format, args...)
	m.recorder.Fatalf(format, args...)
}
