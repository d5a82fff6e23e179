package testkit

import (
	"sync"
	"testing"
)

// Together runs fn(0) … fn(n-1) at once, as n instances starting together
// would, and fails the test with each error, named by its index.
func Together(t testing.TB, n int, fn func(i int) error) {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
}
