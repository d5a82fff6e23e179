package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/dlq"
	"github.com/herald-dev/herald/internal/history"
	"github.com/herald-dev/herald/internal/ingest"
	"github.com/herald-dev/herald/internal/outcome"
	"github.com/herald-dev/herald/internal/ratelimit"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/pkg/webhook"
)

// TestGetShowsHealth: one subscription carries its health counters and
// the circuit state; a list does with include=health.
func TestGetShowsHealth(t *testing.T) {
	store := newMemStore()
	hist := &fakeHistory{}
	h := newHarness(t, Config{}, Deps{Store: store})
	c := create(t, h, validSub)
	other := create(t, h, validSub)
	rate := 0.75
	hist.health = map[string]history.Health{c.ID: {
		Attempts: 4, Delivered: 3, SuccessRate: &rate, LastError: "HTTP 503", LastStatus: 503,
		LastErrorAt: time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC), DeadLetters: 2,
	}}
	h2 := newHarness(t, Config{}, Deps{Store: store, History: hist, Circuits: fakeCircuits{c.ID: ratelimit.Open}})

	r := h2.do("GET", "/v1/subscriptions/"+c.ID, "")
	checkReply(t, "GET", "/v1/subscriptions/{id}", r)
	var got struct {
		ID     string `json:"id"`
		Health struct {
			Attempts    int      `json:"recent_attempts"`
			SuccessRate *float64 `json:"success_rate"`
			LastError   string   `json:"last_error"`
			DLQ         int      `json:"dlq_count"`
			Circuit     string   `json:"circuit"`
		} `json:"health"`
	}
	r.decode(t, &got)
	if got.ID != c.ID || got.Health.Attempts != 4 || got.Health.SuccessRate == nil || *got.Health.SuccessRate != 0.75 ||
		got.Health.LastError != "HTTP 503" || got.Health.DLQ != 2 || got.Health.Circuit != "open" {
		t.Errorf("GET %s", r.body)
	}

	// A subscription without history has zero counters and no rate.
	r = h2.do("GET", "/v1/subscriptions/"+other.ID, "")
	checkReply(t, "GET", "/v1/subscriptions/{id}", r)
	if !strings.Contains(string(r.body), `"circuit":"closed"`) || strings.Contains(string(r.body), "success_rate") {
		t.Errorf("quiet subscription %s", r.body)
	}

	// Lists leave health out unless asked.
	r = h2.do("GET", "/v1/subscriptions", "")
	checkReply(t, "GET", "/v1/subscriptions", r)
	if strings.Contains(string(r.body), `"health"`) {
		t.Errorf("list without include shows health: %s", r.body)
	}
	r = h2.do("GET", "/v1/subscriptions?include=health", "")
	checkReply(t, "GET", "/v1/subscriptions", r)
	if strings.Count(string(r.body), `"health"`) != 2 {
		t.Errorf("list with include=health: %s", r.body)
	}
	wantError(t, h2.do("GET", "/v1/subscriptions?include=secrets", ""), http.StatusBadRequest, codeValidation, "include")

	// Without history or circuits there is nothing to tell.
	if r := h.do("GET", "/v1/subscriptions/"+c.ID, ""); strings.Contains(string(r.body), `"health"`) {
		t.Errorf("health without a history: %s", r.body)
	}

	// Deleting a subscription forgets its history.
	if r := h2.do("DELETE", "/v1/subscriptions/"+other.ID, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.status)
	}
	if len(hist.forgot) != 1 || hist.forgot[0] != other.ID {
		t.Errorf("forgot %v", hist.forgot)
	}
}

// testSigning: "signing": "ed25519" gives the subscription a key pair; the
// reply and later reads carry only the public key.
func testSigning(t *testing.T, store Store) {
	h := newHarness(t, Config{}, Deps{Store: store})
	r := h.do("POST", "/v1/subscriptions", `{"url": "https://hooks.example.com/in", "signing": "ed25519", "topics": ["orders"]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	checkReply(t, "POST", "/v1/subscriptions", r)
	var c struct {
		ID        string `json:"id"`
		PublicKey string `json:"public_key"`
		Secret    string `json:"secret"`
	}
	r.decode(t, &c)
	if _, err := webhook.ParsePublicKey(c.PublicKey); err != nil || !strings.HasPrefix(c.Secret, "whsec_") {
		t.Errorf("created %s: %v", r.body, err)
	}
	if strings.Contains(string(r.body), webhook.SigningKeyPrefix) {
		t.Errorf("the reply shows the private key: %s", r.body)
	}
	g := h.do("GET", "/v1/subscriptions/"+c.ID, "")
	if !strings.Contains(string(g.body), c.PublicKey) || strings.Contains(string(g.body), webhook.SigningKeyPrefix) {
		t.Errorf("GET %s", g.body)
	}
	sub, _ := store.Get(c.ID)
	if sub.SigningKey == nil {
		t.Error("the store has no signing key")
	}

	plain := create(t, h, `{"url": "https://hooks.example.com/in", "signing": "hmac"}`)
	if plain.PublicKey != "" {
		t.Errorf("hmac subscription has public key %q", plain.PublicKey)
	}
	wantError(t, h.do("POST", "/v1/subscriptions", `{"url": "https://e.com", "signing": "rsa"}`), http.StatusBadRequest, codeValidation, "signing")
	wantError(t, h.do("POST", "/v1/subscriptions", `{"url": "https://e.com", "signing": true}`), http.StatusBadRequest, codeValidation, "signing")
	// Still strict about everything else, and nothing half-created.
	wantError(t, h.do("POST", "/v1/subscriptions", `{"url": "nope", "signing": "ed25519"}`), http.StatusBadRequest, codeValidation, "url")
	wantError(t, h.do("POST", "/v1/subscriptions", `{"url": "https://e.com", "signing": "ed25519", "colour": 1}`), http.StatusBadRequest, codeValidation, "colour")
	// A client cannot set the public key itself.
	wantError(t, h.do("POST", "/v1/subscriptions", `{"url": "https://e.com", "public_key": "whpk_x"}`), http.StatusBadRequest, codeValidation, "public_key")
	if n := len(store.List()); n != 2 {
		t.Errorf("%d subscriptions, want 2", n)
	}
}

func TestAttemptsRoute(t *testing.T) {
	store := newMemStore()
	hist := &fakeHistory{}
	h := newHarness(t, Config{}, Deps{Store: store, History: hist})
	c := create(t, h, validSub)
	var as []history.Attempt
	for i := range 30 {
		as = append(as, history.Attempt{
			DeliveryID: "msg_x", EventID: "evt-1", EventType: "order.created", Attempt: 30 - i,
			State: outcome.Failed, HTTPStatus: 500, LatencyMS: 3.5, Error: "HTTP 500", Response: "no",
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", At: time.Now().UTC(),
		})
	}
	hist.attempts = map[string][]history.Attempt{c.ID: as}
	path := "/v1/subscriptions/" + c.ID + "/attempts"

	r := h.do("GET", path, "")
	checkReply(t, "GET", "/v1/subscriptions/{id}/attempts", r)
	var page struct{ Data []history.Attempt }
	r.decode(t, &page)
	if len(page.Data) != DefaultAttempts || page.Data[0].Attempt != 30 {
		t.Errorf("%d attempts, first %+v", len(page.Data), page.Data[0])
	}
	r = h.do("GET", path+"?limit=5", "")
	r.decode(t, &page)
	if len(page.Data) != 5 {
		t.Errorf("limit=5 gave %d", len(page.Data))
	}
	other := create(t, h, validSub)
	if r := h.do("GET", "/v1/subscriptions/"+other.ID+"/attempts", ""); !strings.Contains(string(r.body), `"data":[]`) {
		t.Errorf("no attempts: %s", r.body)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=x"} {
		wantError(t, h.do("GET", path+"?"+q, ""), http.StatusBadRequest, codeValidation, "limit")
	}
	wantError(t, h.do("GET", "/v1/subscriptions/sub_nope/attempts", ""), http.StatusNotFound, codeNotFound, "")
	bare := newHarness(t, Config{}, Deps{Store: store})
	checkReply(t, "GET", "/v1/subscriptions/{id}/attempts", wantReply(t, bare.do("GET", path, ""), http.StatusServiceUnavailable))
}

func wantReply(t *testing.T, r reply, status int) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

func TestTestRoute(t *testing.T) {
	store := newMemStore()
	tester := &fakeTester{res: &TestResult{
		DeliveryID: "msg_a", EventID: "test_a", Delivered: true, State: outcome.Delivered,
		HTTPStatus: 200, LatencyMS: 4.2, Response: "ok", AttemptedAt: time.Now().UTC(),
	}}
	h := newHarness(t, Config{}, Deps{Store: store, Tester: tester})
	c := create(t, h, validSub)
	r := wantReply(t, h.do("POST", "/v1/subscriptions/"+c.ID+"/test", ""), http.StatusOK)
	checkReply(t, "POST", "/v1/subscriptions/{id}/test", r)
	if !strings.Contains(string(r.body), `"delivered":true`) {
		t.Errorf("test reply %s", r.body)
	}
	wantError(t, h.do("POST", "/v1/subscriptions/sub_nope/test", ""), http.StatusNotFound, codeNotFound, "")
	tester.err = subscription.ErrStopped
	wantError(t, h.do("POST", "/v1/subscriptions/"+c.ID+"/test", ""), http.StatusServiceUnavailable, codeNotReady, "")
	bare := newHarness(t, Config{}, Deps{Store: store})
	wantError(t, bare.do("POST", "/v1/subscriptions/"+c.ID+"/test", ""), http.StatusServiceUnavailable, codeNotReady, "")
}

func TestDeadLetterRoutes(t *testing.T) {
	store := newMemStore()
	at := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	q := &fakeDLQ{entries: []dlq.Entry{
		{DeliveryID: "msg_1", EventID: "evt-1", EventType: "order.paid", SubscriptionID: "sub_a", Reason: "attempts_exhausted",
			LastStatus: 500, Attempts: 10, Source: "orders/0/1", Timestamp: at, Value: []byte(`{"n": 1}`)},
		{DeliveryID: "msg_2", EventID: "evt-2", EventType: "order.paid", SubscriptionID: "sub_a", Reason: "non_retryable",
			Source: "orders/0/2", Timestamp: at, Value: []byte{0xff, 0x00}},
		{DeliveryID: "msg_3", EventID: "evt-3", EventType: "order.paid", SubscriptionID: "sub_b", Reason: "gone",
			Source: "orders/0/3", Timestamp: at, Value: []byte(`{}`), Corrupt: "no attempt header"},
	}}
	hist := &fakeHistory{}
	h := newHarness(t, Config{}, Deps{Store: store, DeadLetters: q, History: hist})

	r := wantReply(t, h.do("GET", "/v1/dlq", ""), http.StatusOK)
	checkReply(t, "GET", "/v1/dlq", r)
	var page struct {
		Data []struct {
			DeliveryID    string          `json:"delivery_id"`
			Value         json.RawMessage `json:"value"`
			ValueEncoding string          `json:"value_encoding"`
		}
	}
	r.decode(t, &page)
	if len(page.Data) != 3 || string(page.Data[0].Value) != `{"n":1}` || page.Data[0].ValueEncoding != "json" ||
		page.Data[1].ValueEncoding != "base64" || string(page.Data[1].Value) != `"/wA="` {
		t.Errorf("list %s", r.body)
	}
	if f := q.listed[0]; f.Limit != DefaultDeadLetters || f.SubscriptionID != "" {
		t.Errorf("default filter %+v", f)
	}
	r = wantReply(t, h.do("GET", "/v1/dlq?subscription=sub_a&since=2025-05-01T00:00:00Z&until=2025-05-02T00:00:00%2B02:00&ids=msg_1,msg_2&limit=7", ""), http.StatusOK)
	f := q.listed[len(q.listed)-1]
	if f.SubscriptionID != "sub_a" || !f.Since.Equal(time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)) ||
		!f.Until.Equal(time.Date(2025, 5, 1, 22, 0, 0, 0, time.UTC)) || len(f.IDs) != 2 || f.Limit != 7 {
		t.Errorf("filter %+v", f)
	}
	for q, field := range map[string]string{"since=yesterday": "since", "until=1": "until", "limit=0": "limit", "limit=1001": "limit"} {
		wantError(t, h.do("GET", "/v1/dlq?"+q, ""), http.StatusBadRequest, codeValidation, field)
	}

	r = wantReply(t, h.do("POST", "/v1/dlq/replay", `{"subscription_id": "sub_a", "since": "2025-05-01T00:00:00Z"}`), http.StatusAccepted)
	checkReply(t, "POST", "/v1/dlq/replay", r)
	if strings.TrimSpace(string(r.body)) != `{"replayed":2}` {
		t.Errorf("replay %s", r.body)
	}
	if f := q.replayed[0]; f.SubscriptionID != "sub_a" || f.Since.IsZero() || f.Limit != 0 {
		t.Errorf("replay filter %+v", f)
	}
	if hist.replayed["sub_a"] != 2 {
		t.Errorf("health counts lowered by %v, want sub_a: 2", hist.replayed)
	}
	// The corrupt entry is not counted as replayed.
	wantReply(t, h.do("POST", "/v1/dlq/replay", `{"ids": ["msg_3"], "subscription_id": "sub_b"}`), http.StatusAccepted)
	if hist.replayed["sub_b"] != 0 {
		t.Errorf("corrupt entry counted: %v", hist.replayed)
	}
	for body, field := range map[string]string{
		`{}`:                        "",
		``:                          "",
		`{"colour": "blue"}`:        "colour",
		`{"ids": "msg_1"}`:          "ids",
		`{"since": "last tuesday"}`: "since",
		`{"since": "2025-05-02T00:00:00Z", "until": "2025-05-01T00:00:00Z"}`: "until",
	} {
		code := codeValidation
		if body == `` {
			code = codeInvalidRequest
		}
		wantError(t, h.do("POST", "/v1/dlq/replay", body), http.StatusBadRequest, code, field)
	}
	if len(q.replayed) != 2 {
		t.Errorf("%d replays, want 2: rejected requests replay nothing", len(q.replayed))
	}
	bare := newHarness(t, Config{}, Deps{Store: store})
	wantError(t, bare.do("GET", "/v1/dlq", ""), http.StatusServiceUnavailable, codeNotReady, "")
	wantError(t, bare.do("POST", "/v1/dlq/replay", `{"ids": ["x"]}`), http.StatusServiceUnavailable, codeNotReady, "")
}

func TestEventsRoute(t *testing.T) {
	store := newMemStore()
	in := &fakeIngest{res: ingest.Result{ID: "evt_1"}}
	h := newHarness(t, Config{MaxBodyBytes: 4096}, Deps{Store: store, Ingest: in})
	body := `{"type": "order.created", "data": {"n": 1}, "key": "o-1"}`

	r := wantReply(t, h.do("POST", "/v1/events", body, "Idempotency-Key", "k-1"), http.StatusAccepted)
	checkReply(t, "POST", "/v1/events", r)
	if strings.TrimSpace(string(r.body)) != `{"id":"evt_1"}` || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("reply %s %v", r.body, r.header)
	}
	if ev := in.got[0]; ev.Type != "order.created" || string(ev.Data) != `{"n":1}` || ev.Key != "o-1" || in.keys[0] != "k-1" {
		t.Errorf("published %+v key %q", ev, in.keys[0])
	}
	in.res.Replayed = true
	r = wantReply(t, h.do("POST", "/v1/events", body, "Idempotency-Key", "k-1"), http.StatusAccepted)
	if r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replayed request without Idempotent-Replayed")
	}

	wantError(t, h.do("POST", "/v1/events", `{"data": {}}`), http.StatusBadRequest, codeValidation, "type")
	wantError(t, h.do("POST", "/v1/events", `{"type": "a", "data": {}, "extra": 1}`), http.StatusBadRequest, codeValidation, "extra")
	wantError(t, h.do("POST", "/v1/events", `{"type": `), http.StatusBadRequest, codeInvalidRequest, "")
	wantError(t, h.do("POST", "/v1/events", body, "Idempotency-Key", strings.Repeat("k", 300)), http.StatusBadRequest, codeValidation, "Idempotency-Key")
	wantError(t, h.do("POST", "/v1/events", `{"type": "a", "data": "`+strings.Repeat("x", 5000)+`"}`), http.StatusRequestEntityTooLarge, codeBodyTooLarge, "")
	n := len(in.got)

	for err, want := range map[error]int{
		ingest.ErrInProgress:         http.StatusConflict,
		ingest.ErrKeyReused:          http.StatusUnprocessableEntity,
		ingest.ErrUnavailable:        http.StatusServiceUnavailable,
		errors.New("broker is gone"): http.StatusServiceUnavailable,
	} {
		in.err = err
		r := h.do("POST", "/v1/events", body, "Idempotency-Key", "k-2")
		checkReply(t, "POST", "/v1/events", wantReply(t, r, want))
	}
	if len(in.got) != n+4 {
		t.Errorf("invalid requests reached the producer")
	}
	bare := newHarness(t, Config{}, Deps{Store: store})
	wantError(t, bare.do("POST", "/v1/events", body), http.StatusServiceUnavailable, codeNotReady, "")
}
