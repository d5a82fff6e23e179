package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/herald-dev/herald/internal/apiclient"
	"github.com/herald-dev/herald/internal/subscription"
)

// storeSuite runs the API's behaviour against a store; it runs on the
// in-memory store and on the Kafka-backed one.
func storeSuite(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("create", func(t *testing.T) { testCreate(t, newStore(t)) })
	t.Run("get", func(t *testing.T) { testGet(t, newStore(t)) })
	t.Run("update", func(t *testing.T) { testUpdate(t, newStore(t)) })
	t.Run("delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("rotate", func(t *testing.T) { testRotate(t, newStore(t)) })
	t.Run("list filters", func(t *testing.T) { testListFilters(t, newStore(t)) })
	t.Run("pagination", func(t *testing.T) { testPagination(t, newStore(t)) })
	t.Run("body limit", func(t *testing.T) { testBodyLimit(t, newStore(t)) })
	t.Run("signing", func(t *testing.T) { testSigning(t, newStore(t)) })
}

func TestSubscriptionsMemStore(t *testing.T) {
	storeSuite(t, func(*testing.T) Store { return newMemStore() })
}

const validSub = `{"url": "https://hooks.example.com/in", "topics": ["orders"], "event_types": ["order.*"]}`

func create(t *testing.T, h *harness, body string) created {
	t.Helper()
	r := h.do("POST", "/v1/subscriptions", body)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var c struct {
		subscription.Subscription
		Secret string `json:"secret"`
	}
	r.decode(t, &c)
	return created{&c.Subscription, c.Secret}
}

func testCreate(t *testing.T, store Store) {
	h := newHarness(t, Config{}, Deps{Store: store})
	r := h.do("POST", "/v1/subscriptions", `{"url": "https://hooks.example.com/in", "topics": ["orders"],
		"event_types": ["order.*"], "headers": {"x-team": "billing"}, "tenant": "acme", "max_attempts": 5}`)
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var got map[string]any
	r.decode(t, &got)
	id, _ := got["id"].(string)
	if id == "" {
		t.Fatalf("no id in %s", r.body)
	}
	if loc := r.header.Get("Location"); loc != "/v1/subscriptions/"+id {
		t.Errorf("Location = %q", loc)
	}
	if secret, _ := got["secret"].(string); !strings.HasPrefix(secret, "whsec_") {
		t.Errorf("secret = %q, want whsec_…", secret)
	}
	if r.header.Get("ETag") != fmt.Sprintf(`"%v"`, got["version"]) {
		t.Errorf("ETag %q, version %v", r.header.Get("ETag"), got["version"])
	}
	if got["url"] != "https://hooks.example.com/in" || got["tenant"] != "acme" || got["status"] != "active" ||
		got["payload"] != "envelope" || got["max_attempts"] != float64(5) {
		t.Errorf("created %s", r.body)
	}
	// The secret is shown once: reading the subscription back never has it.
	if g := h.do("GET", "/v1/subscriptions/"+id, ""); strings.Contains(string(g.body), "whsec_") || strings.Contains(string(g.body), `"secret"`) {
		t.Errorf("GET shows a secret: %s", g.body)
	}

	for _, tc := range []struct{ name, body, code, field string }{
		{"missing url", `{"topics": ["orders"]}`, codeValidation, "url"},
		{"bad url", `{"url": "ftp://example.com"}`, codeValidation, "url"},
		{"bad payload", `{"url": "https://e.com", "payload": "xml"}`, codeValidation, "payload"},
		{"bad topic", `{"url": "https://e.com", "topics": ["no spaces"]}`, codeValidation, "topics"},
		{"wrong type", `{"url": "https://e.com", "max_attempts": "ten"}`, codeValidation, "max_attempts"},
		{"out of range", `{"url": "https://e.com", "max_attempts": 1000}`, codeValidation, "max_attempts"},
		{"reserved header", `{"url": "https://e.com", "headers": {"webhook-id": "x"}}`, codeValidation, "headers"},
		{"unknown field", `{"url": "https://e.com", "colour": "blue"}`, codeValidation, "colour"},
		{"server-owned field", `{"url": "https://e.com", "id": "sub_mine"}`, codeValidation, "id"},
		{"not JSON", `{"url": `, codeInvalidRequest, ""},
		{"not an object", `["https://e.com"]`, codeInvalidRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := wantError(t, h.do("POST", "/v1/subscriptions", tc.body), http.StatusBadRequest, tc.code, tc.field)
			if tc.field != "" && !strings.Contains(d.Message, "") {
				t.Errorf("message %q", d.Message)
			}
		})
	}
	if n := len(store.List()); n != 1 {
		t.Errorf("%d subscriptions after rejected creates, want 1", n)
	}
}

func testGet(t *testing.T, store Store) {
	h := newHarness(t, Config{}, Deps{Store: store})
	c := create(t, h, validSub)
	r := h.do("GET", "/v1/subscriptions/"+c.ID, "")
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var got subscription.Subscription
	r.decode(t, &got)
	if got.ID != c.ID || got.URL != c.URL || got.Version != c.Version {
		t.Errorf("got %+v, created %+v", got, c.Subscription)
	}
	if r.header.Get("ETag") != etag(c.Version) {
		t.Errorf("ETag = %q, want %q", r.header.Get("ETag"), etag(c.Version))
	}
	wantError(t, h.do("GET", "/v1/subscriptions/sub_nope", ""), http.StatusNotFound, codeNotFound, "")
}

func testUpdate(t *testing.T, store Store) {
	h := newHarness(t, Config{}, Deps{Store: store})
	c := create(t, h, validSub)
	path := "/v1/subscriptions/" + c.ID

	r := h.do("PATCH", path, `{"url": "https://hooks.example.com/v2", "status": "paused"}`, "If-Match", etag(c.Version))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var got subscription.Subscription
	r.decode(t, &got)
	if got.URL != "https://hooks.example.com/v2" || got.Status != subscription.StatusPaused ||
		got.Topics[0] != "orders" || got.Version <= c.Version {
		t.Errorf("patched to %+v", got)
	}
	if r.header.Get("ETag") != etag(got.Version) {
		t.Errorf("ETag = %q, version %d", r.header.Get("ETag"), got.Version)
	}

	// The version the client read is stale now: 412, nothing applied.
	d := wantError(t, h.do("PATCH", path, `{"url": "https://stale.example.com"}`, "If-Match", etag(c.Version)),
		http.StatusPreconditionFailed, codePreconditionFailed, "")
	if !strings.Contains(d.Message, etag(got.Version)) {
		t.Errorf("412 message %q does not name the current version", d.Message)
	}
	// Rejected bodies apply nothing, even the valid fields beside the bad one.
	wantError(t, h.do("PATCH", path, `{"description": "kept?", "url": "not a url"}`), http.StatusBadRequest, codeValidation, "url")
	wantError(t, h.do("PATCH", path, `{"description": "kept?", "colour": "blue"}`), http.StatusBadRequest, codeValidation, "colour")
	wantError(t, h.do("PATCH", path, `{"payload": "thin"}`), http.StatusBadRequest, codeValidation, "thin_url_template")
	wantError(t, h.do("PATCH", path, `{"version": 99}`), http.StatusBadRequest, codeValidation, "version")
	if now, _ := store.Get(c.ID); now.URL != got.URL || now.Description != "" || now.Version != got.Version {
		t.Errorf("a rejected patch changed the subscription: %+v", now)
	}

	// Without If-Match the change applies to whatever is current.
	if r := h.do("PATCH", path, `{"description": "no precondition", "headers": {"x-a": "1"}}`); r.status != http.StatusOK {
		t.Fatalf("unconditional patch: %d %s", r.status, r.body)
	}
	// "*" matches any existing version.
	if r := h.do("PATCH", path, `{"status": "active"}`, "If-Match", "*"); r.status != http.StatusOK {
		t.Fatalf("If-Match *: %d %s", r.status, r.body)
	}
	wantError(t, h.do("PATCH", "/v1/subscriptions/sub_nope", `{"status": "active"}`), http.StatusNotFound, codeNotFound, "")
}

func testDelete(t *testing.T, store Store) {
	h := newHarness(t, Config{}, Deps{Store: store})
	c := create(t, h, validSub)
	path := "/v1/subscriptions/" + c.ID
	wantError(t, h.do("DELETE", path, "", "If-Match", `"999"`), http.StatusPreconditionFailed, codePreconditionFailed, "")
	r := h.do("DELETE", path, "", "If-Match", etag(c.Version))
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delete: %d %q", r.status, r.body)
	}
	wantError(t, h.do("GET", path, ""), http.StatusNotFound, codeNotFound, "")
	wantError(t, h.do("DELETE", path, ""), http.StatusNotFound, codeNotFound, "")
}

func testRotate(t *testing.T, store Store) {
	h := newHarness(t, Config{}, Deps{Store: store})
	c := create(t, h, validSub)
	path := "/v1/subscriptions/" + c.ID + "/rotate-secret"
	seen := map[string]bool{c.Secret: true}
	for _, body := range []string{"", `{}`, `{"grace_period": "1h"}`, `{"grace_period": "0s"}`} {
		r := h.do("POST", path, body)
		if r.status != http.StatusOK {
			t.Fatalf("rotate %q: %d %s", body, r.status, r.body)
		}
		var got rotateReply
		r.decode(t, &got)
		if !strings.HasPrefix(got.Secret, "whsec_") || seen[got.Secret] {
			t.Errorf("rotate %q gave secret %q", body, got.Secret)
		}
		seen[got.Secret] = true
	}
	wantError(t, h.do("POST", path, `{"grace_period": "forever"}`), http.StatusBadRequest, codeValidation, "grace_period")
	wantError(t, h.do("POST", path, `{"grace_period": "-1h"}`), http.StatusBadRequest, codeValidation, "grace_period")
	wantError(t, h.do("POST", path, `{"grace_period": 3600}`), http.StatusBadRequest, codeValidation, "grace_period")
	wantError(t, h.do("POST", path, `{"grace": "1h"}`), http.StatusBadRequest, codeValidation, "grace")
	wantError(t, h.do("POST", path, `{"grace_period": `), http.StatusBadRequest, codeInvalidRequest, "")
	wantError(t, h.do("POST", "/v1/subscriptions/sub_nope/rotate-secret", ""), http.StatusNotFound, codeNotFound, "")
}

func testListFilters(t *testing.T, store Store) {
	h := newHarness(t, Config{}, Deps{Store: store})
	a := create(t, h, `{"url": "https://a.example.com", "topics": ["orders"], "event_types": ["order.*"], "tenant": "acme"}`)
	b := create(t, h, `{"url": "https://b.example.com", "topics": ["orders", "payments"], "tenant": "globex", "status": "paused"}`)
	c := create(t, h, `{"url": "https://c.example.com", "topics": ["payments"], "event_types": ["payment.failed"]}`)
	ctx := context.Background()
	for _, tc := range []struct {
		opts apiclient.ListOptions
		want []string
	}{
		{apiclient.ListOptions{}, []string{a.ID, b.ID, c.ID}},
		{apiclient.ListOptions{Topic: "orders"}, []string{a.ID, b.ID}},
		{apiclient.ListOptions{Topic: "payments", Status: "active"}, []string{c.ID}},
		{apiclient.ListOptions{EventType: "order.*"}, []string{a.ID}},
		{apiclient.ListOptions{Tenant: "globex"}, []string{b.ID}},
		{apiclient.ListOptions{Status: "paused"}, []string{b.ID}},
		{apiclient.ListOptions{Topic: "nothing"}, nil},
	} {
		p, err := h.client.ListSubscriptions(ctx, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range p.Data {
			ids = append(ids, s.ID)
		}
		slices.Sort(tc.want) // the list is in ID order, and IDs are random
		if fmt.Sprint(ids) != fmt.Sprint(tc.want) || p.NextCursor != "" {
			t.Errorf("list %+v = %v (cursor %q), want %v", tc.opts, ids, p.NextCursor, tc.want)
		}
	}
	// An empty page is [] so clients need not special-case null.
	if r := h.do("GET", "/v1/subscriptions?topic=nothing", ""); !strings.Contains(string(r.body), `"data":[]`) {
		t.Errorf("empty list body %s", r.body)
	}
	wantError(t, h.do("GET", "/v1/subscriptions?status=sleeping", ""), http.StatusBadRequest, codeValidation, "status")
}

// testPagination walks 120 subscriptions in pages and sees each exactly
// once, in ID order, with a deletion between pages changing nothing else.
func testPagination(t *testing.T, store Store) {
	h := newHarness(t, Config{}, Deps{Store: store})
	ctx := context.Background()
	var ids []string
	for i := range 120 {
		c, err := h.client.CreateSubscription(ctx, &apiclient.SubscriptionCreate{
			URL: fmt.Sprintf("https://hooks.example.com/%d", i), Topics: []string{"orders"},
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	var walked []string
	var sizes []int
	opts := apiclient.ListOptions{Limit: 50}
	for {
		p, err := h.client.ListSubscriptions(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(p.Data))
		for _, s := range p.Data {
			walked = append(walked, s.ID)
		}
		if p.NextCursor == "" {
			break
		}
		if len(sizes) > 10 {
			t.Fatal("pagination does not end")
		}
		opts.Cursor = p.NextCursor
	}
	if fmt.Sprint(sizes) != "[50 50 20]" {
		t.Errorf("page sizes %v, want [50 50 20]", sizes)
	}
	seen := map[string]bool{}
	for i, id := range walked {
		if seen[id] || (i > 0 && id <= walked[i-1]) {
			t.Fatalf("walk not in strict ID order at %d: %v", i, walked)
		}
		seen[id] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("walk missed %s", id)
		}
	}

	// The default page is 50; the maximum 500.
	p, err := h.client.ListSubscriptions(ctx, apiclient.ListOptions{})
	if err != nil || len(p.Data) != DefaultPageSize || p.NextCursor == "" {
		t.Errorf("default page: %d items, cursor %q, %v", len(p.Data), p.NextCursor, err)
	}
	if p, err := h.client.ListSubscriptions(ctx, apiclient.ListOptions{Limit: MaxPageSize}); err != nil || len(p.Data) != 120 {
		t.Errorf("max page: %v", err)
	}
	// A deletion between pages shifts nothing: the cursor is an ID.
	first, err := h.client.ListSubscriptions(ctx, apiclient.ListOptions{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.client.DeleteSubscription(ctx, first.Data[9].ID); err != nil {
		t.Fatal(err)
	}
	second, err := h.client.ListSubscriptions(ctx, apiclient.ListOptions{Limit: 10, Cursor: first.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	if second.Data[0].ID != walked[10] {
		t.Errorf("after deleting the last of page 1, page 2 starts at %s, want %s", second.Data[0].ID, walked[10])
	}

	for _, q := range []string{"limit=0", "limit=501", "limit=ten", "limit=-1"} {
		wantError(t, h.do("GET", "/v1/subscriptions?"+q, ""), http.StatusBadRequest, codeValidation, "limit")
	}
	wantError(t, h.do("GET", "/v1/subscriptions?cursor=%21%21", ""), http.StatusBadRequest, codeValidation, "cursor")
}

func testBodyLimit(t *testing.T, store Store) {
	h := newHarness(t, Config{MaxBodyBytes: 1024}, Deps{Store: store})
	big := `{"url": "https://e.com", "description": "` + strings.Repeat("x", 2048) + `"}`
	wantError(t, h.do("POST", "/v1/subscriptions", big), http.StatusRequestEntityTooLarge, codeBodyTooLarge, "")
	c := create(t, h, validSub)
	wantError(t, h.do("PATCH", "/v1/subscriptions/"+c.ID, big), http.StatusRequestEntityTooLarge, codeBodyTooLarge, "")
	rot := `{"grace_period": "` + strings.Repeat("1", 2048) + `h"}`
	wantError(t, h.do("POST", "/v1/subscriptions/"+c.ID+"/rotate-secret", rot), http.StatusRequestEntityTooLarge, codeBodyTooLarge, "")
	if got, _ := store.Get(c.ID); got.Version != c.Version {
		t.Errorf("a rejected body changed the subscription")
	}
}

// TestStoreConflict: a change that loses a race inside the store is a 409,
// not a 412 or a 500.
func TestStoreConflict(t *testing.T) {
	store := newMemStore()
	h := newHarness(t, Config{}, Deps{Store: store})
	c := create(t, h, validSub)
	store.mu.Lock()
	store.conflict = true
	store.mu.Unlock()
	wantError(t, h.do("PATCH", "/v1/subscriptions/"+c.ID, `{"status": "paused"}`, "If-Match", etag(c.Version)),
		http.StatusConflict, codeConflict, "")

	_, err := h.client.UpdateSubscription(context.Background(), c.ID, map[string]any{"status": "paused"}, c.Version+5)
	var apiErr *apiclient.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusPreconditionFailed || apiErr.Code != codePreconditionFailed {
		t.Errorf("stale version through the client: %v", err)
	}
}
