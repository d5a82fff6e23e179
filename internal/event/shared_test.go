package event

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestSharedBuildsOnce(t *testing.T) {
	var s Shared
	var calls atomic.Int32
	var wg sync.WaitGroup
	got := make([][]byte, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = s.Envelope(func() []byte { calls.Add(1); return []byte("body") })
		}()
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("build ran %d times, want 1", n)
	}
	for i, b := range got {
		if string(b) != "body" {
			t.Fatalf("caller %d got %q", i, b)
		}
	}
	var none *Shared
	if b := none.Envelope(func() []byte { return []byte("x") }); string(b) != "x" {
		t.Fatalf("nil Shared returned %q", b)
	}
}
