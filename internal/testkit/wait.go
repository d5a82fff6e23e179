package testkit

import (
	"fmt"
	"testing"
	"time"
)

// pollInterval is how often Eventually and Receiver.WaitFor look again.
const pollInterval = 10 * time.Millisecond

// Eventually calls cond until it returns true and fails the test if that has
// not happened within timeout. msgf, if given, is a format string and its
// arguments describing what was awaited; it is formatted on failure only.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msgf ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testkit: condition not met within %v%s", timeout, describe(msgf))
		}
		time.Sleep(pollInterval)
	}
}

func describe(msgf []any) string {
	if len(msgf) == 0 {
		return ""
	}
	if format, ok := msgf[0].(string); ok {
		return ": " + fmt.Sprintf(format, msgf[1:]...)
	}
	return ": " + fmt.Sprint(msgf...)
}
