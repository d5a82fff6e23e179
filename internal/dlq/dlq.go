// Package dlq reads herald.dlq: it lists dead letters with why they gave
// up, replays them into the first retry tier with their attempts reset and
// their delivery ids kept, and backfills a subscription from a source
// topic's history. Writing dead letters is retry.Producer's job.
package dlq

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/retry"
)

// Entry is one dead letter.
type Entry struct {
	DeliveryID     string    `json:"delivery_id"`
	EventID        string    `json:"event_id"`
	EventType      string    `json:"event_type"`
	SubscriptionID string    `json:"subscription_id"`
	Reason         string    `json:"reason"`
	LastStatus     int       `json:"last_status,omitempty"`
	LastError      string    `json:"last_error,omitempty"`
	Attempts       int       `json:"attempts"`
	FirstAttemptAt time.Time `json:"first_attempt_at,omitzero"`
	LastAttemptAt  time.Time `json:"last_attempt_at,omitzero"`
	// Source is the source record's position, "topic/partition/offset".
	Source string `json:"source"`
	// Replayed says the delivery had already been replayed once.
	Replayed bool `json:"replayed,omitempty"`
	// Partition, Offset and Timestamp place the entry in herald.dlq;
	// Timestamp is when it was dead-lettered.
	Partition int32     `json:"dlq_partition"`
	Offset    int64     `json:"dlq_offset"`
	Timestamp time.Time `json:"dead_lettered_at"`
	// Value is the event, unchanged.
	Value []byte `json:"value"`
	// Corrupt is set when the record's herald headers cannot be read; such
	// an entry is listed but not replayed.
	Corrupt string `json:"corrupt,omitempty"`

	headers retry.Headers
}

// Filter selects entries. Zero fields select everything.
type Filter struct {
	SubscriptionID string
	// Since and Until bound when the entry was dead-lettered: [Since, Until).
	Since, Until time.Time
	// IDs are delivery ids.
	IDs []string
	// Limit keeps the oldest Limit matching entries; 0 keeps all.
	Limit int
}

func (f *Filter) match(e *Entry) bool {
	switch {
	case f.SubscriptionID != "" && e.SubscriptionID != f.SubscriptionID:
		return false
	case !f.Since.IsZero() && e.Timestamp.Before(f.Since):
		return false
	case !f.Until.IsZero() && !e.Timestamp.Before(f.Until):
		return false
	case len(f.IDs) > 0 && !slices.Contains(f.IDs, e.DeliveryID):
		return false
	}
	return true
}

// List returns the entries of topic (herald.dlq) that match f, oldest
// first, reading from the start (or Since) up to the end offsets it finds
// when it begins. cl is a plain, non-group client; List reads through a
// short-lived client built from its options.
func List(ctx context.Context, cl *kgo.Client, topic string, f Filter) ([]Entry, error) {
	spans, err := bounds(ctx, kadm.NewClient(cl), topic, f.Since, time.Time{})
	if err != nil {
		return nil, err
	}
	var out []Entry
	err = scan(ctx, cl, topic, spans, func(r *kgo.Record) bool {
		e := parse(r)
		if !f.match(&e) {
			return true
		}
		out = append(out, e)
		if f.Limit > 0 && len(out) >= 2*f.Limit {
			out = oldest(out, f.Limit)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if f.Limit > 0 {
		return oldest(out, f.Limit), nil
	}
	return oldest(out, len(out)), nil
}

// oldest sorts entries by dead-letter time, then position, and keeps n.
func oldest(es []Entry, n int) []Entry {
	slices.SortFunc(es, func(a, b Entry) int {
		if c := a.Timestamp.Compare(b.Timestamp); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Partition, b.Partition); c != 0 {
			return c
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
	if len(es) > n {
		clear(es[n:])
		es = es[:n]
	}
	return es
}

func parse(r *kgo.Record) Entry {
	h, err := retry.ParseHeaders(r.Headers)
	e := Entry{
		DeliveryID:     h.DeliveryID,
		EventID:        h.EventID,
		EventType:      h.EventType,
		SubscriptionID: h.SubscriptionID,
		Reason:         h.DLQReason,
		LastStatus:     h.LastStatus,
		LastError:      h.LastError,
		Attempts:       h.Attempts,
		FirstAttemptAt: h.FirstAttemptAt,
		LastAttemptAt:  h.LastAttemptAt,
		Source:         h.Source,
		Replayed:       h.Replay,
		Partition:      r.Partition,
		Offset:         r.Offset,
		Timestamp:      r.Timestamp,
		Value:          r.Value,
		headers:        h,
	}
	if e.SubscriptionID == "" {
		e.SubscriptionID = string(r.Key)
	}
	if err != nil {
		e.Corrupt = err.Error()
	} else if err := replayable(&h); err != nil {
		e.Corrupt = err.Error()
	}
	return e
}

// replayable reports what a dead letter lacks to go back to a retry tier.
func replayable(h *retry.Headers) error {
	c := *h
	c.Attempt = 1
	c.DueAt = time.UnixMilli(1)
	return c.CheckRetry()
}
