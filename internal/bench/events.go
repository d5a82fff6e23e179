package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// eventType is the type of every benchmark event unless a scenario needs
// its own.
const eventType = "order.created"

// makeEvent is a JSON event of exactly size bytes (when size allows): a
// type, an id, the producer's clock in ns, and padding.
func makeEvent(seq, size int, typ string, sent time.Time) []byte {
	b := make([]byte, 0, max(size, 128))
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","id":"ord_`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `","sent_ns":`...)
	b = strconv.AppendInt(b, sent.UnixNano(), 10)
	b = append(b, `,"customer":"cus_4f9a1c","currency":"EUR","pad":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// producer returns a client tuned to write benchmark events: no linger for
// paced latency runs, some for bulk loads.
func (r *runner) producer(linger time.Duration) (*kgo.Client, error) {
	return kgo.NewClient(
		kgo.SeedBrokers(r.svc.brokers...),
		kgo.ProducerLinger(linger),
		kgo.MaxBufferedRecords(100_000),
		kgo.ProducerBatchMaxBytes(1<<20),
	)
}

// preProduce writes n events of typeOf(i) to topic and waits for every ack.
func (r *runner) preProduce(ctx context.Context, topic string, n int, typeOf func(int) string) error {
	cl, err := r.producer(10 * time.Millisecond)
	if err != nil {
		return err
	}
	defer cl.Close()
	var (
		mu       sync.Mutex
		firstErr error
	)
	now := time.Now()
	for i := range n {
		rec := &kgo.Record{
			Topic: topic,
			Key:   []byte("ord_" + strconv.Itoa(i)),
			Value: makeEvent(i, r.cfg.EventBytes, typeOf(i), now),
		}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if firstErr != nil {
		return fmt.Errorf("producing to %s: %w", topic, firstErr)
	}
	return nil
}

// paced produces n events at rate per second, each stamped with the time
// it is handed to the client, calling typeOf for its type. It returns when
// all are acked.
func (r *runner) paced(ctx context.Context, cl *kgo.Client, topic string, n, rate int, typeOf func(int) string) error {
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var (
		mu       sync.Mutex
		firstErr error
	)
	for i := 0; i < n; {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		// Everything due by now goes out: a coarse timer must not lower the
		// rate.
		for now := time.Now(); i < n && !start.Add(time.Duration(i)*interval).After(now); i++ {
			rec := &kgo.Record{
				Topic: topic,
				Key:   []byte("ord_" + strconv.Itoa(i)),
				Value: makeEvent(i, r.cfg.EventBytes, typeOf(i), time.Now()),
			}
			cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return firstErr
}

func sameType(int) string { return eventType }
