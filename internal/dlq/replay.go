package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/retry"
)

// batchSize is how many records a replay or backfill produces before it
// waits for the broker's acks.
const batchSize = 500

// Replay re-injects the dead letters that match f into the first retry
// tier, due now, with their attempts reset to 1 and everything else kept:
// the same delivery id (receivers and the dedupe layer recognise it), the
// same event, the first-attempt time. Replaying an entry twice is harmless:
// once one copy is delivered, dedupe drops the other. Entries whose headers
// are corrupt are skipped. It returns how many entries were re-injected.
func Replay(ctx context.Context, cl *kgo.Client, f Filter, p *retry.Producer) (int, error) {
	entries, err := List(ctx, cl, p.DLQTopic(), f)
	if err != nil {
		return 0, err
	}
	b := batch{p: p}
	now := time.Now()
	for i := range entries {
		e := &entries[i]
		if e.Corrupt != "" {
			continue
		}
		h := e.headers
		h.Attempt = 1
		h.DueAt = now
		h.Replay = true
		h.DLQReason, h.Attempts, h.LastAttemptAt, h.RetrySource = "", 0, time.Time{}, ""
		if err := b.add(ctx, p.Requeue(&h, e.Value)); err != nil {
			return b.sent, err
		}
	}
	return b.sent, b.flush(ctx)
}

// BackfillRequest asks for a subscription to receive a source topic's
// history again.
type BackfillRequest struct {
	SubscriptionID string
	Topic          string
	// Since and Until bound the source records' timestamps: [Since, Until).
	// A zero Until reads up to the end offsets found when the backfill
	// starts.
	Since, Until time.Time
	// Match says whether the subscription wants an event (its event-type
	// patterns); nil takes every record of the topic.
	Match func(*event.Event) bool
	// Extractor reads event identity as the dispatcher does; nil uses the
	// defaults.
	Extractor *event.Extractor
}

// Backfill reads req.Topic from the first offset at or after Since (found by
// timestamp) and puts one delivery per matching record into the first retry
// tier, due now, attempt 1, with the delivery id a first attempt would have
// had: whatever the subscriber already acknowledged is suppressed by dedupe.
// Records herald would reject are skipped. It returns how many deliveries
// were queued.
func Backfill(ctx context.Context, cl *kgo.Client, adm *kadm.Client, req BackfillRequest, p *retry.Producer) (int, error) {
	if req.SubscriptionID == "" || req.Topic == "" {
		return 0, errors.New("dlq: backfill needs a subscription and a topic")
	}
	if !req.Until.IsZero() && !req.Until.After(req.Since) {
		return 0, errors.New("dlq: backfill until must be after since")
	}
	x := req.Extractor
	if x == nil {
		x = &event.Extractor{}
	}
	spans, err := bounds(ctx, adm, req.Topic, req.Since, req.Until)
	if err != nil {
		return 0, fmt.Errorf("dlq: backfill: %w", err)
	}
	b := batch{p: p}
	now := time.Now()
	var perr error
	err = scan(ctx, cl, req.Topic, spans, func(r *kgo.Record) bool {
		if r.Timestamp.Before(req.Since) || (!req.Until.IsZero() && !r.Timestamp.Before(req.Until)) {
			return true
		}
		ev, err := x.FromRecord(r)
		if err != nil {
			return true
		}
		if req.Match != nil && !req.Match(&ev) {
			return true
		}
		h := retry.Headers{
			DeliveryID:        event.DeliveryID(ev.ID, req.SubscriptionID),
			EventID:           ev.ID,
			EventType:         ev.Type,
			EventTime:         ev.Time,
			EventKey:          ev.Key,
			ContentType:       ev.ContentType,
			SubscriptionID:    req.SubscriptionID,
			Attempt:           1,
			DueAt:             now,
			Source:            ev.Source(),
			TraceParent:       ev.TraceParent,
			OriginTraceParent: ev.TraceParent,
			Original:          retry.OriginalHeaders(ev.Headers),
		}
		perr = b.add(ctx, p.Requeue(&h, ev.Value))
		return perr == nil
	})
	if err == nil {
		err = perr
	}
	if err == nil {
		err = b.flush(ctx)
	}
	if err != nil {
		return b.sent, fmt.Errorf("dlq: backfill of %s for %s: %w", req.Topic, req.SubscriptionID, err)
	}
	return b.sent, nil
}

// batch produces records in groups and counts what the broker acked.
type batch struct {
	p    *retry.Producer
	recs []*kgo.Record
	sent int
}

func (b *batch) add(ctx context.Context, r *kgo.Record) error {
	b.recs = append(b.recs, r)
	if len(b.recs) >= batchSize {
		return b.flush(ctx)
	}
	return nil
}

func (b *batch) flush(ctx context.Context) error {
	if len(b.recs) == 0 {
		return nil
	}
	if err := b.p.Produce(ctx, b.recs...); err != nil {
		return err
	}
	b.sent += len(b.recs)
	b.recs = b.recs[:0]
	return nil
}
