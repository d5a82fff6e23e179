package bench

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/delivery"
	"github.com/herald-dev/herald/internal/subscription"
)

// latency is scenario 3: a steady event rate through a warm herald,
// produce→receiver-ack latency from the producer's clock embedded in each
// event. Its baseline is the same rate through the pipeline without herald:
// a plain franz-go consumer that posts each record to the same receiver.
func (r *runner) latency(ctx context.Context) (*Latency, error) {
	res := &Latency{RatePerSec: r.cfg.LatencyRate, Seconds: r.cfg.LatencyDuration.Seconds()}
	topic := r.name("latency", "events")
	if err := r.svc.createTopic(ctx, topic, r.cfg.ThroughputPartitions); err != nil {
		return nil, err
	}
	cfg := r.heraldConfig("latency", topic)
	if _, err := r.createSubscriptions(ctx, cfg, []*subscription.Subscription{{
		URL: r.rcv.url + "/lat/", Topics: []string{topic}, EventTypes: []string{"order.*"},
		MaxInFlight: r.cfg.Concurrency,
	}}); err != nil {
		return nil, err
	}
	h, err := r.startHerald(ctx, cfg, -1)
	if err != nil {
		return nil, err
	}
	split := &latencySplit{toAttempt: newLatencyHistogram(), http: newLatencyHistogram()}
	figs, err := r.measureLatency(ctx, topic, r.cfg.LatencyDuration, func(from time.Time) {
		split.from = from.UnixNano()
		h.split.Store(split)
	})
	h.split.Store(nil)
	res.Herald = figs
	split.mu.Lock()
	res.ToAttempt, res.Request = figures(split.toAttempt), figures(split.http)
	split.mu.Unlock()
	res.Errors = h.errorSample()
	if stopErr := h.shutdown(); err == nil && stopErr != nil {
		err = fmt.Errorf("herald: %w", stopErr)
	}
	if err != nil {
		return res, err
	}
	r.log.Sugar().Infof("latency: herald p50 %.2fms p99 %.2fms p999 %.2fms (%d/%d received)", figs.P50MS, figs.P99MS, figs.P999MS, figs.Received, figs.Sent)

	base, err := r.baselineLatency(ctx)
	if err != nil {
		return res, fmt.Errorf("baseline: %w", err)
	}
	res.Baseline = &base
	res.P50Ratio = ratio(figs.P50MS, base.P50MS)
	res.P99Ratio = ratio(figs.P99MS, base.P99MS)
	res.P999Ratio = ratio(figs.P999MS, base.P999MS)
	r.log.Sugar().Infof("latency: baseline p50 %.2fms p99 %.2fms p999 %.2fms", base.P50MS, base.P99MS, base.P999MS)
	return res, nil
}

// measureLatency produces at the configured rate to topic, first a warm-up
// that is not recorded (consumers join, connections open), then for d, and
// waits for the measured events to reach the receiver.
func (r *runner) measureLatency(ctx context.Context, topic string, d time.Duration, started func(time.Time)) (LatencyFigures, error) {
	rate := r.cfg.LatencyRate
	r.rcv.reset()
	cl, err := r.producer(0)
	if err != nil {
		return LatencyFigures{}, err
	}
	defer cl.Close()
	warm := max(rate, 10) // one second's worth
	if err := r.paced(ctx, cl, topic, warm, rate, sameType); err != nil {
		return LatencyFigures{}, err
	}
	n := int(float64(rate) * d.Seconds())
	from := time.Now()
	if started != nil {
		started(from)
	}
	r.rcv.lat.start(from)
	err = r.paced(ctx, cl, topic, n, rate, sameType)
	deadline := time.Now().Add(10 * time.Second)
	for err == nil && r.rcv.lat.count() < int64(n) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	hist, got := r.rcv.lat.stop()
	if err != nil {
		return LatencyFigures{}, err
	}
	figs := figures(hist)
	figs.Sent, figs.Received = int64(n), got
	if got < int64(n) {
		return figs, fmt.Errorf("%d of %d events reached the receiver within 10s of the last produce (%d requests in all)", got, n, r.rcv.requests.Load())
	}
	return figs, nil
}

// baselineLatency runs measureLatency against a plain consumer that posts
// every record's value to the receiver with a plain client, Concurrency
// requests at a time.
func (r *runner) baselineLatency(ctx context.Context) (LatencyFigures, error) {
	topic := r.name("latency", "baseline")
	if err := r.svc.createTopic(ctx, topic, r.cfg.ThroughputPartitions); err != nil {
		return LatencyFigures{}, err
	}
	cons, err := kgo.NewClient(
		kgo.SeedBrokers(r.svc.brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return LatencyFigures{}, err
	}
	defer cons.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * r.cfg.Concurrency}}
	defer hc.CloseIdleConnections()

	cctx, stop := context.WithCancel(ctx)
	work := make(chan []byte, 1024)
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Go(func() {
			for v := range work {
				_ = post(cctx, hc, &delivery.Request{URL: r.rcv.url + "/lat/baseline", Body: v, Header: http.Header{"Content-Type": {"application/json"}}})
			}
		})
	}
	wg.Go(func() {
		defer close(work)
		for {
			fs := cons.PollFetches(cctx)
			if cctx.Err() != nil {
				return
			}
			fs.EachRecord(func(rec *kgo.Record) { work <- rec.Value })
		}
	})
	figs, err := r.measureLatency(ctx, topic, r.cfg.LatencyBaseline, nil)
	stop()
	wg.Wait()
	return figs, err
}

func figures(h *hdrhistogram.Histogram) LatencyFigures {
	if h == nil || h.TotalCount() == 0 {
		return LatencyFigures{}
	}
	at := func(q float64) float64 { return round(float64(h.ValueAtQuantile(q))/1000, 3) }
	return LatencyFigures{
		P50MS:  at(50),
		P90MS:  at(90),
		P99MS:  at(99),
		P999MS: at(99.9),
		MaxMS:  round(float64(h.Max())/1000, 3),
		MeanMS: round(h.Mean()/1000, 3),
	}
}
