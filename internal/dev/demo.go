package dev

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/config"
	"github.com/herald-dev/herald/internal/dispatch"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/pkg/webhook"
)

// receiver is the demo subscriber: it verifies each request with
// pkg/webhook, exactly as a real receiver would, and answers 401 when a
// signature does not verify.
type receiver struct {
	srv      *http.Server
	url      string
	mu       sync.RWMutex
	verifier *webhook.Verifier
	verified atomic.Int64
	failed   atomic.Int64
	out      io.Writer
}

func startReceiver(out io.Writer) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String() + "/webhooks", out: out}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) URL() string { return r.url }

func (r *receiver) SetSecret(secret string) error {
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.verifier = v
	r.mu.Unlock()
	return nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.RLock()
	v := r.verifier
	r.mu.RUnlock()
	if v == nil {
		http.Error(w, "receiver has no secret yet", http.StatusServiceUnavailable)
		return
	}
	if _, err := v.VerifyRequest(req, 1<<20); err != nil {
		r.failed.Add(1)
		fmt.Fprintf(r.out, "receiver: signature check failed for %s: %v\n", req.Header.Get(webhook.HeaderID), err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	r.verified.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return r.srv.Shutdown(ctx)
}

var demoTypes = []string{"order.created", "order.paid", "order.shipped", "order.cancelled"}

// produceDemo writes a sample order event every interval with a plain
// producer: no herald headers, just the JSON a service would publish.
func produceDemo(ctx context.Context, cfg config.Config, every time.Duration, out io.Writer) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...), kgo.DefaultProduceTopic(cfg.Sources[0].Topic))
	if err != nil {
		fmt.Fprintf(out, "demo producer: %v\n", err)
		return
	}
	defer cl.Close()
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		id := fmt.Sprintf("ord_%d_%d", time.Now().Unix(), n)
		value, _ := json.Marshal(map[string]any{
			"id":       id,
			"type":     demoTypes[rand.IntN(len(demoTypes))],
			"amount":   rand.IntN(50000) + 100,
			"currency": "EUR",
		})
		cl.Produce(ctx, &kgo.Record{Key: []byte(id), Value: value}, func(_ *kgo.Record, err error) {
			if err != nil && ctx.Err() == nil {
				fmt.Fprintf(out, "demo producer: %v\n", err)
			}
		})
	}
}

var printMu sync.Mutex

func printDelivery(out io.Writer, j *dispatch.Job, r *outcome.Record) {
	status := "-"
	if r.HTTPStatus != 0 {
		status = fmt.Sprint(r.HTTPStatus)
	}
	line := fmt.Sprintf("%s  %-13s %-16s %-22s attempt %d  status %-3s %7.1fms",
		time.Now().Format("15:04:05.000"), r.State, r.EventType, r.DeliveryID, r.Attempt, status, r.LatencyMS)
	if r.Error != "" {
		line += "  " + r.Error
	}
	printMu.Lock()
	fmt.Fprintln(out, line)
	printMu.Unlock()
}
