package dispatch

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/herald-dev/herald/internal/subscription"
)

// goroutineID is the id runtime.Stack prints for the calling goroutine.
func goroutineID() uint64 {
	var b [64]byte
	s := bytes.TrimPrefix(b[:runtime.Stack(b[:], false)], []byte("goroutine "))
	id, _ := strconv.ParseUint(string(s[:bytes.IndexByte(s, ' ')]), 10, 64)
	return id
}

// idFlight notes which goroutine finishes it.
type idFlight struct{ ids chan<- uint64 }

func (f idFlight) Finish() Result {
	f.ids <- goroutineID()
	return Result{Step: Delivered}
}

// TestFinishersAreReused pins the finishers: jobs that end one after the
// other are finished by the same goroutine, whose stack has grown once,
// rather than each by a fresh one. Close lets the finisher go.
func TestFinishersAreReused(t *testing.T) {
	sub := &subscription.Subscription{ID: "sub_finishers", MaxInFlight: 1}
	ids := make(chan uint64, 1)
	d := New(nil, WithStarter(func(ctx context.Context, j *Job) (Finisher, Result) {
		return idFlight{ids: ids}, Result{}
	}))
	before := runtime.NumGoroutine()
	seen := map[uint64]int{}
	const jobs = 20
	for i := range jobs {
		var done sync.WaitGroup
		done.Add(1)
		if err := d.Submit(context.Background(), job(sub, i, func(Result) { done.Done() })); err != nil {
			t.Fatal(err)
		}
		seen[<-ids]++
		done.Wait()
	}
	if len(seen) > 2 {
		t.Fatalf("%d jobs were finished by %d goroutines, want them reused: %v", jobs, len(seen), seen)
	}
	if n := d.finishers.n.Load(); n != 1 {
		t.Fatalf("%d finishers kept, want 1", n)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := d.finishers.n.Load(); n != 0 {
		t.Fatalf("%d finishers left after Close", n)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("%d goroutines after Close, %d before the jobs", after, before)
	}
}
