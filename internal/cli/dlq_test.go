package cli

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/api"
	"github.com/herald-dev/herald/internal/dlq"
	"github.com/herald-dev/herald/internal/subscription"
)

// deadLetters is an api.DeadLetters that keeps the filters it was given.
type deadLetters struct {
	mu       sync.Mutex
	entries  []dlq.Entry
	listed   []dlq.Filter
	replayed []dlq.Filter
}

func (d *deadLetters) List(_ context.Context, f dlq.Filter) ([]dlq.Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.listed = append(d.listed, f)
	return d.entries, nil
}

func (d *deadLetters) Replay(_ context.Context, f dlq.Filter) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.replayed = append(d.replayed, f)
	return len(d.entries), nil
}

// noSubs is an api.Store without subscriptions: the dead-letter routes do
// not use it.
type noSubs struct{}

func (noSubs) Ready() bool { return true }
func (noSubs) Create(context.Context, *subscription.Subscription) (*subscription.Subscription, string, error) {
	return nil, "", subscription.ErrStopped
}
func (noSubs) Update(context.Context, string, int64, func(*subscription.Subscription) error) (*subscription.Subscription, error) {
	return nil, subscription.ErrStopped
}
func (noSubs) Delete(context.Context, string) error { return subscription.ErrStopped }
func (noSubs) RotateSecret(context.Context, string, time.Duration) (string, error) {
	return "", subscription.ErrStopped
}
func (noSubs) Get(string) (*subscription.Subscription, bool) { return nil, false }
func (noSubs) List() []*subscription.Subscription            { return nil }

// startDLQAPI serves the admin API with d as its dead-letter queue and
// points HERALD_SERVER and HERALD_TOKEN at it.
func startDLQAPI(t *testing.T, d *deadLetters) {
	t.Helper()
	srv := httptest.NewServer(api.New(api.Config{Tokens: []string{cliToken}}, api.Deps{Store: noSubs{}, DeadLetters: d}))
	t.Cleanup(srv.Close)
	t.Setenv("HERALD_SERVER", srv.URL)
	t.Setenv("HERALD_TOKEN", cliToken)
}

func runDLQ(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return execute(NewDLQCommand(), args...)
}

func TestDLQList(t *testing.T) {
	at := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	d := &deadLetters{entries: []dlq.Entry{
		{DeliveryID: "msg_1", EventID: "evt-1", EventType: "order.paid", SubscriptionID: "sub_a", Reason: "attempts_exhausted",
			LastStatus: 500, LastError: "HTTP 500:\n  internal error", Attempts: 10, Source: "orders/0/1", Timestamp: at, Value: []byte(`{"n": 1}`)},
		{DeliveryID: "msg_2", SubscriptionID: "sub_b", Reason: "corrupt_record: herald-attempt is missing",
			Timestamp: at.Add(time.Minute), Value: []byte{0xff}, Corrupt: "herald-attempt is missing"},
	}}
	startDLQAPI(t, d)

	out, _, err := runDLQ(t, "list", "--subscription", "sub_a", "--since", "2025-05-01T00:00:00Z",
		"--until", "2025-05-02T00:00:00Z", "--id", "msg_1,msg_2", "--id", "msg_3", "--limit", "5")
	if err != nil {
		t.Fatal(err)
	}
	f := d.listed[0]
	if f.SubscriptionID != "sub_a" || !f.Since.Equal(time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)) ||
		!f.Until.Equal(time.Date(2025, 5, 2, 0, 0, 0, 0, time.UTC)) || strings.Join(f.IDs, ",") != "msg_1,msg_2,msg_3" || f.Limit != 5 {
		t.Errorf("the server got filter %+v", f)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "DEAD-LETTERED") {
		t.Fatalf("table:\n%s", out)
	}
	for _, want := range []string{"2025-05-01T12:00:00Z", "msg_1", "sub_a", "order.paid", "attempts_exhausted", "10", "500", "HTTP 500: internal error"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	if !strings.Contains(lines[2], "not replayable") {
		t.Errorf("corrupt row %q does not say it cannot be replayed", lines[2])
	}

	out, _, err = runDLQ(t, "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Data []struct {
			DeliveryID    string          `json:"delivery_id"`
			Reason        string          `json:"reason"`
			Value         json.RawMessage `json:"value"`
			ValueEncoding string          `json:"value_encoding"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Data) != 2 || page.Data[0].Reason != "attempts_exhausted" ||
		strings.Join(strings.Fields(string(page.Data[0].Value)), "") != `{"n":1}` || page.Data[1].ValueEncoding != "base64" {
		t.Errorf("list -o json: %v\n%s", err, out)
	}
	if f := d.listed[1]; f.SubscriptionID != "" || f.Limit != api.DefaultDeadLetters {
		t.Errorf("unfiltered list sent %+v", f)
	}

	// An empty queue prints the header only, or an empty list.
	d.entries = nil
	if out, _, err = runDLQ(t, "list", "-o", "json"); err != nil || !strings.Contains(out, `"data": []`) {
		t.Errorf("empty list -o json: %v %q", err, out)
	}
}

func TestDLQReplay(t *testing.T) {
	d := &deadLetters{entries: []dlq.Entry{{DeliveryID: "msg_1"}, {DeliveryID: "msg_2"}}}
	startDLQAPI(t, d)

	out, _, err := runDLQ(t, "replay", "--subscription", "sub_a", "--since", "1h")
	if err != nil || strings.TrimSpace(out) != "Replayed 2 dead letters" {
		t.Fatalf("replay: %v %q", err, out)
	}
	if f := d.replayed[0]; f.SubscriptionID != "sub_a" || time.Since(f.Since) < 59*time.Minute || time.Since(f.Since) > time.Hour+time.Minute {
		t.Errorf("the server got filter %+v", f)
	}
	out, _, err = runDLQ(t, "replay", "--id", "msg_1", "-o", "json")
	if err != nil || strings.Join(strings.Fields(out), "") != `{"replayed":2}` {
		t.Fatalf("replay -o json: %v %q", err, out)
	}
	if f := d.replayed[1]; strings.Join(f.IDs, ",") != "msg_1" || f.SubscriptionID != "" {
		t.Errorf("the server got filter %+v", f)
	}
}

func TestDLQErrors(t *testing.T) {
	startDLQAPI(t, &deadLetters{})
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"replay without a filter", []string{"replay"}, []string{"select what to replay"}},
		{"bad since", []string{"list", "--since", "last week"}, []string{"--since", "RFC 3339"}},
		{"until before since", []string{"replay", "--since", "1h", "--until", "2h"}, []string{"--until"}},
		{"limit out of range", []string{"list", "--limit", "5000"}, []string{`field "limit"`, "HTTP 400"}},
		{"wrong token", []string{"list", "--token", "guess"}, []string{"401", "HERALD_TOKEN"}},
		{"bad output", []string{"list", "-o", "yaml"}, []string{"table or json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runDLQ(t, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}

	// A server without a dead-letter queue says so.
	srv := httptest.NewServer(api.New(api.Config{Tokens: []string{cliToken}}, api.Deps{Store: noSubs{}}))
	t.Cleanup(srv.Close)
	_, _, err := runDLQ(t, "list", "--server", srv.URL)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "dead-letter queue") {
		t.Errorf("server without a DLQ: %v", err)
	}
}
