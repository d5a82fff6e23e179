package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/delivery"
	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/subscription"
)

// limitAgain measures the limit again, for a scenario that runs minutes
// after scenario 1: the machine's speed drifts by a fifth and more within
// a run, and a ratio is only as good as its baseline is close in time.
// It returns first when the limit cannot be measured now.
func (r *runner) limitAgain(ctx context.Context, first *Limit) *Limit {
	if first == nil {
		return nil
	}
	again, err := r.limit(ctx)
	if err != nil {
		r.log.Warn("measuring the limit again failed; using scenario 1's", zap.Error(err))
		return first
	}
	r.log.Sugar().Infof("limit again: %.0f deliveries/s (scenario 1: %.0f)", again.DeliveriesPerSec, first.DeliveriesPerSec)
	return again
}

// limit is scenario 1: the receiver hit by a plain net/http client at the
// concurrency herald's subscription gets, sending the very request herald
// would send (body and headers built once by delivery.Build): the physical
// limit of this machine for this receiver.
func (r *runner) limit(ctx context.Context) (*Limit, error) {
	c, n := r.cfg.Concurrency, r.cfg.LimitRequests
	req, err := sampleRequest(r.rcv.url+"/", r.cfg.EventBytes)
	if err != nil {
		return nil, err
	}
	cl := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        2 * c,
		MaxIdleConnsPerHost: 2 * c,
		IdleConnTimeout:     30 * time.Second,
	}}
	defer cl.CloseIdleConnections()

	r.rcv.reset()
	var (
		next    atomic.Int64
		lastAck atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		sendErr error
	)
	for range c {
		wg.Go(func() {
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				if err := post(ctx, cl, req); err != nil {
					errOnce.Do(func() { sendErr = err })
					return
				}
				lastAck.Store(time.Now().UnixNano())
			}
		})
	}
	wg.Wait()
	if sendErr != nil {
		return nil, sendErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	span := time.Duration(lastAck.Load() - r.rcv.first.Load())
	res := &Limit{Concurrency: c, Requests: n, Seconds: round(span.Seconds(), 3)}
	if span > 0 {
		res.DeliveriesPerSec = round(float64(n)/span.Seconds(), 1)
	}
	r.log.Sugar().Infof("limit: %d requests at c=%d in %v: %.0f/s", n, c, span.Round(time.Millisecond), res.DeliveriesPerSec)
	return res, nil
}

func post(ctx context.Context, cl *http.Client, r *delivery.Request) error {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return err
	}
	hr.Header = r.Header.Clone()
	resp, err := cl.Do(hr)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered %d", resp.StatusCode)
	}
	return nil
}

// sampleRequest is the request herald sends for one benchmark event.
func sampleRequest(url string, size int) (*delivery.Request, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sub := &subscription.Subscription{ID: "sub_limit", URL: url, Secrets: []subscription.Secret{{Key: key}}}
	subscription.ApplyDefaults(sub)
	ev := &event.Event{
		ID: "limit/0/0", Type: eventType, Time: time.Now(),
		Topic: "limit", Value: makeEvent(0, size, eventType, time.Now()),
	}
	return delivery.Build(ev, sub, event.DeliveryID(ev.ID, sub.ID), time.Now())
}
