package dispatch

import (
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func track(o *Offsets, topic string, p int32, offsets ...int64) {
	for _, off := range offsets {
		o.Track(&kgo.Record{Topic: topic, Partition: p, Offset: off, LeaderEpoch: 7})
	}
}

func committed(t *testing.T, o *Offsets, topic string, p int32) (int64, bool) {
	t.Helper()
	c := o.Committable()
	eo, ok := c[topic][p]
	return eo.Offset, ok
}

func TestOffsetsCommitOnlyContiguous(t *testing.T) {
	o := NewOffsets()
	track(o, "orders", 0, 10, 11, 12, 13)

	o.Finish("orders", 0, 12)
	o.Finish("orders", 0, 11)
	if _, ok := committed(t, o, "orders", 0); ok {
		t.Fatal("offset 10 is unfinished: nothing may be committed")
	}
	o.Finish("orders", 0, 10)
	off, ok := committed(t, o, "orders", 0)
	if !ok || off != 13 {
		t.Fatalf("want commit 13 (one past 12), got %d %v", off, ok)
	}
	if _, ok := committed(t, o, "orders", 0); ok {
		t.Fatal("a commit that did not move must not be offered again")
	}
	o.Finish("orders", 0, 13)
	if off, _ := committed(t, o, "orders", 0); off != 14 {
		t.Fatalf("want 14, got %d", off)
	}
	if n := o.Unfinished("orders", 0); n != 0 {
		t.Fatalf("unfinished %d", n)
	}
}

func TestOffsetsPartitionsIndependent(t *testing.T) {
	o := NewOffsets()
	track(o, "orders", 0, 0, 1)
	track(o, "orders", 1, 0, 1)
	o.Finish("orders", 1, 0)
	o.Finish("orders", 1, 1)
	c := o.Committable()
	if _, ok := c["orders"][0]; ok {
		t.Fatal("partition 0 has nothing finished")
	}
	if c["orders"][1].Offset != 2 || c["orders"][1].Epoch != 7 {
		t.Fatalf("partition 1: %+v", c["orders"][1])
	}
}

func TestOffsetsMarkDirtyAfterFailedCommit(t *testing.T) {
	o := NewOffsets()
	track(o, "t", 0, 5)
	o.Finish("t", 0, 5)
	c := o.Committable()
	o.MarkDirty(c)
	if off, ok := committed(t, o, "t", 0); !ok || off != 6 {
		t.Fatalf("a failed commit must be offered again, got %d %v", off, ok)
	}
}

func TestOffsetsForgetAndUnknown(t *testing.T) {
	o := NewOffsets()
	track(o, "t", 0, 1, 2)
	o.Finish("t", 0, 99) // never tracked: ignored
	o.Forget("t", 0)
	o.Finish("t", 0, 1)
	if len(o.Committable()) != 0 {
		t.Fatal("a forgotten partition must not be committed")
	}
}

// TestOffsetsRandomOrder finishes many offsets in random order and checks
// the committed offset is always one past the longest finished prefix.
func TestOffsetsRandomOrder(t *testing.T) {
	const n = 5000
	o := NewOffsets()
	for i := int64(0); i < n; i++ {
		track(o, "t", 0, i)
	}
	order := rand.Perm(n)
	finished := make([]bool, n)
	prefix := 0
	for _, i := range order {
		o.Finish("t", 0, int64(i))
		finished[i] = true
		for prefix < n && finished[prefix] {
			prefix++
		}
		c := o.Committable()
		if prefix == 0 {
			if len(c) != 0 {
				t.Fatal("committed before offset 0 finished")
			}
			continue
		}
		if eo, ok := c["t"][0]; ok && eo.Offset != int64(prefix) {
			t.Fatalf("committed %d, want %d", eo.Offset, prefix)
		}
	}
	if o.Unfinished("t", 0) != 0 {
		t.Fatal("all finished")
	}
}

func BenchmarkOffsets(b *testing.B) {
	o := NewOffsets()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		o.Track(&kgo.Record{Topic: "t", Offset: int64(i)})
		o.Finish("t", 0, int64(i))
	}
}
