package apitest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/api/apitest"
	"github.com/herald-dev/herald/internal/apiclient"
	"github.com/herald-dev/herald/internal/testkit"
	"github.com/herald-dev/herald/pkg/webhook"
)

// TestTestSendAttemptsAndReplay: a test send shows in the attempts; a
// dead letter shows in the DLQ and the health counters, and replaying it
// delivers it and lowers the count.
func TestTestSendAttemptsAndReplay(t *testing.T) {
	st := apitest.Start(t, apitest.Options{})
	recv := testkit.NewReceiver(t)
	recv.Respond(testkit.Statuses(http.StatusInternalServerError))
	ctx := context.Background()
	sub, err := st.Client.CreateSubscription(ctx, &apiclient.SubscriptionCreate{
		URL: recv.URL(), Topics: []string{st.Source}, MaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}

	res, err := st.Client.SendTest(ctx, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.Delivered || res.HTTPStatus != 500 {
		t.Errorf("test send to a failing endpoint: %+v", res)
	}
	as, err := st.Client.Attempts(ctx, sub.ID, 0)
	if err != nil || len(as) != 1 || as[0].DeliveryID != res.DeliveryID || as[0].EventType != "herald.test" || as[0].HTTPStatus != 500 {
		t.Fatalf("attempts after a test send: %+v, %v", as, err)
	}

	produce(t, st, "doomed-1")
	testkit.Eventually(t, 30*time.Second, func() bool {
		d, err := st.Client.GetDetail(ctx, sub.ID)
		return err == nil && d.Health != nil && d.Health.DeadLetters == 1
	}, "the dead letter is counted")
	var dead []deadLetter
	testkit.Eventually(t, 30*time.Second, func() bool {
		dead = listDLQ(t, st, sub.ID)
		return len(dead) == 1
	}, "the dead letter is listed")
	if dead[0].EventID != "doomed-1" || dead[0].Reason != "attempts_exhausted" || dead[0].LastStatus != 500 {
		t.Errorf("dead letter %+v", dead[0])
	}
	d, _ := st.Client.GetDetail(ctx, sub.ID)
	if h := d.Health; h.Attempts != 2 || h.Delivered != 0 || h.LastStatus != 500 || h.Circuit != "closed" {
		t.Errorf("health %+v", h)
	}

	recv.Respond(testkit.Statuses(http.StatusOK))
	if n := replayDLQ(t, st, dead[0].DeliveryID); n != 1 {
		t.Fatalf("replayed %d, want 1", n)
	}
	testkit.Eventually(t, 30*time.Second, func() bool {
		for _, r := range recv.Requests() {
			if r.Header.Get(webhook.HeaderID) == dead[0].DeliveryID && r.N > 2 {
				return true
			}
		}
		return false
	}, "the replayed delivery arrives")
	d, _ = st.Client.GetDetail(ctx, sub.ID)
	if d.Health.DeadLetters != 0 {
		t.Errorf("dlq count after replay %d, want 0", d.Health.DeadLetters)
	}
}

type deadLetter struct {
	DeliveryID string `json:"delivery_id"`
	EventID    string `json:"event_id"`
	Reason     string `json:"reason"`
	LastStatus int    `json:"last_status"`
}

// call makes one request to the stack's API and decodes the JSON reply.
func call(t *testing.T, st *apitest.Stack, method, path, body string, want int, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, st.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apitest.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
}

func listDLQ(t *testing.T, st *apitest.Stack, sub string) []deadLetter {
	var page struct{ Data []deadLetter }
	call(t, st, "GET", "/v1/dlq?subscription="+sub, "", http.StatusOK, &page)
	return page.Data
}

func replayDLQ(t *testing.T, st *apitest.Stack, ids ...string) int {
	b, _ := json.Marshal(map[string][]string{"ids": ids})
	var out struct{ Replayed int }
	call(t, st, "POST", "/v1/dlq/replay", string(b), http.StatusAccepted, &out)
	return out.Replayed
}
