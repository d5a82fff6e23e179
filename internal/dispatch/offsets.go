package dispatch

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Offsets tracks, per partition, which polled records are finished, and
// yields the offsets that are safe to commit: one past the lowest contiguous
// finished record. Records finish out of order; the commit never skips an
// unfinished one.
type Offsets struct {
	mu    sync.Mutex
	parts map[topicPartition]*partitionOffsets
}

type topicPartition struct {
	topic     string
	partition int32
}

type partitionOffsets struct {
	// pending holds the offsets polled and not yet committed, in order, with
	// whether each is finished. head is the index of the first one.
	pending []pendingOffset
	head    int
	index   map[int64]int // offset → position in pending
	// commit is the next offset to commit (one past the last contiguous
	// finished record); -1 before any.
	commit      int64
	commitEpoch int32
	dirty       bool
}

type pendingOffset struct {
	offset   int64
	epoch    int32
	finished bool
}

// NewOffsets returns an empty tracker.
func NewOffsets() *Offsets {
	return &Offsets{parts: make(map[topicPartition]*partitionOffsets)}
}

// Track registers a polled record as unfinished. Records of one partition
// must be tracked in offset order, as a poll returns them.
func (o *Offsets) Track(r *kgo.Record) {
	o.mu.Lock()
	defer o.mu.Unlock()
	tp := topicPartition{r.Topic, r.Partition}
	p := o.parts[tp]
	if p == nil {
		p = &partitionOffsets{index: make(map[int64]int), commit: -1}
		o.parts[tp] = p
	}
	if _, dup := p.index[r.Offset]; dup {
		return
	}
	p.index[r.Offset] = len(p.pending)
	p.pending = append(p.pending, pendingOffset{offset: r.Offset, epoch: r.LeaderEpoch})
}

// Finish marks a tracked record finished and advances the partition's
// committable offset over every contiguous finished record.
func (o *Offsets) Finish(topic string, partition int32, offset int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.parts[topicPartition{topic, partition}]
	if p == nil {
		return
	}
	i, ok := p.index[offset]
	if !ok {
		return
	}
	p.pending[i].finished = true
	for p.head < len(p.pending) && p.pending[p.head].finished {
		done := p.pending[p.head]
		delete(p.index, done.offset)
		p.commit = done.offset + 1
		p.commitEpoch = done.epoch
		p.dirty = true
		p.head++
	}
	if p.head > 1024 && p.head*2 > len(p.pending) {
		p.compact()
	}
}

func (p *partitionOffsets) compact() {
	n := copy(p.pending, p.pending[p.head:])
	p.pending = p.pending[:n]
	p.head = 0
	for i, po := range p.pending {
		p.index[po.offset] = i
	}
}

// Committable returns the offsets that moved since the last call, ready for
// kgo's CommitOffsets, and marks them clean.
func (o *Offsets) Committable() map[string]map[int32]kgo.EpochOffset {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out map[string]map[int32]kgo.EpochOffset
	for tp, p := range o.parts {
		if !p.dirty {
			continue
		}
		if out == nil {
			out = make(map[string]map[int32]kgo.EpochOffset)
		}
		if out[tp.topic] == nil {
			out[tp.topic] = make(map[int32]kgo.EpochOffset)
		}
		out[tp.topic][tp.partition] = kgo.EpochOffset{Epoch: p.commitEpoch, Offset: p.commit}
		p.dirty = false
	}
	return out
}

// MarkDirty makes the given offsets committable again, after a commit of
// them failed.
func (o *Offsets) MarkDirty(offsets map[string]map[int32]kgo.EpochOffset) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for topic, parts := range offsets {
		for partition := range parts {
			if p := o.parts[topicPartition{topic, partition}]; p != nil {
				p.dirty = true
			}
		}
	}
}

// Unfinished reports how many tracked records of the partition are not
// finished.
func (o *Offsets) Unfinished(topic string, partition int32) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.parts[topicPartition{topic, partition}]
	if p == nil {
		return 0
	}
	return len(p.index)
}

// Forget drops the partition, after it was revoked or lost: what was not
// committed is redelivered to its next owner.
func (o *Offsets) Forget(topic string, partition int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.parts, topicPartition{topic, partition})
}
