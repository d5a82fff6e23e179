package ui_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/herald-dev/herald/internal/api/apitest"
	"github.com/herald-dev/herald/internal/apiclient"
	"github.com/herald-dev/herald/internal/testkit"
	"github.com/herald-dev/herald/pkg/webhook"
)

// chromium finds Debian's Chromium, installing it through
// deploy/local/chromium.sh when it is missing (as `make test` does).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HERALD_CHROMIUM"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	out, err := exec.Command("../../deploy/local/chromium.sh").Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || lines[len(lines)-1] == "" {
		t.Skipf("no Chromium: /usr/bin/chromium is missing and deploy/local/chromium.sh could not install it (%v); run `apt-get install chromium` or set HERALD_CHROMIUM", err)
	}
	return lines[len(lines)-1]
}

// outputDir is where screenshots go: $HERALD_TEST_OUTPUT, or the test's
// artifact directory (kept with go test -artifacts).
func outputDir(t *testing.T) string {
	if d := os.Getenv("HERALD_TEST_OUTPUT"); d != "" {
		d = filepath.Join(d, t.Name())
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.ArtifactDir()
}

// TestDashboardInBrowser drives the dashboard in headless Chromium: sign
// in, create a subscription, rotate its secret and read the new one, send
// a test event and see its attempt, pause and resume, replay a dead
// letter; with a screenshot of every page.
func TestDashboardInBrowser(t *testing.T) {
	exe := chromium(t)
	st := apitest.Start(t, apitest.Options{})
	recv := testkit.NewReceiver(t)
	out := outputDir(t)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	// The browser lives as long as the context of its first action, so
	// that one has no timeout; each step after it gets its own.
	ctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 30*time.Second) }
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := step()
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	get := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		sctx, cancel := step()
		defer cancel()
		v, err := chromedp.Run(sctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		sctx, cancel := step()
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(out, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		run("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
		return get("read "+sel, chromedp.Text(chromedp.CSS(sel)))
	}

	// Signing in: a wrong token is refused, the right one lands on the list.
	run("open", chromedp.Navigate(st.URL+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	shot("login")
	run("wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token"), chromedp.Click(chromedp.CSS("#login")))
	if msg := text("#login-error"); !strings.Contains(msg, "not valid") {
		t.Errorf("wrong token: %q", msg)
	}
	run("sign in", chromedp.SendKeys(chromedp.CSS("#token"), apitest.Token), chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/subscriptions/new"]`)))

	// Create a subscription and read its secret.
	run("new subscription", chromedp.Click(chromedp.CSS(`a[href="/ui/subscriptions/new"]`)), chromedp.WaitVisible(chromedp.CSS("#url")))
	run("fill the form",
		chromedp.SendKeys(chromedp.CSS("#url"), recv.URL()+"/hooks"),
		chromedp.SendKeys(chromedp.CSS("#description"), "Billing <team> & friends"),
		chromedp.SendKeys(chromedp.CSS("#topics"), st.Source),
		chromedp.SendKeys(chromedp.CSS("#event_types"), "order.*, herald.*"),
	)
	shot("new")
	run("create", chromedp.Click(chromedp.CSS("#create")), chromedp.WaitVisible(chromedp.CSS("#new-secret")))
	secret := get("read the secret", chromedp.Value(chromedp.CSS("#new-secret")))
	subID := get("read the id", chromedp.Text(chromedp.CSS("#secret-sub")))
	if !strings.HasPrefix(secret, "whsec_") || !strings.HasPrefix(subID, "sub_") {
		t.Fatalf("created %q with secret %q", subID, secret)
	}
	shot("created")

	// Rotate the secret: the page shows the new one, once.
	run("open the subscription", chromedp.Click(chromedp.CSS("#secret-sub")), chromedp.WaitVisible(chromedp.CSS("#rotate")))
	if d := text("p.muted"); !strings.Contains(d, "Billing <team> & friends") {
		t.Errorf("description shown as %q: want it escaped and intact", d)
	}
	run("rotate", chromedp.Click(chromedp.CSS("#rotate")), chromedp.WaitVisible(chromedp.CSS("#new-secret")))
	rotated := get("read the new secret", chromedp.Value(chromedp.CSS("#new-secret")))
	if !strings.HasPrefix(rotated, "whsec_") || rotated == secret {
		t.Fatalf("rotated secret %q (was %q)", rotated, secret)
	}
	shot("rotated")

	// Send a test event: the result shows, its attempt appears, and both
	// secrets verify it during the grace period.
	run("back", chromedp.Click(chromedp.CSS("#secret-sub")), chromedp.WaitVisible(chromedp.CSS("#send-test")))
	run("send a test event", chromedp.Click(chromedp.CSS("#send-test")), chromedp.WaitVisible(chromedp.CSS("#test-result")))
	if res := text("#test-result"); !strings.Contains(res, "delivered") || !strings.Contains(res, "200") {
		t.Errorf("test result %q", res)
	}
	if as := text("#attempts"); !strings.Contains(as, "herald.test") || !strings.Contains(as, "delivered") {
		t.Errorf("attempts table %q lacks the test event", as)
	}
	reqs := recv.WaitFor(t, 1, 10*time.Second)
	for _, key := range []string{secret, rotated} {
		v, _ := webhook.NewVerifier(key)
		if err := v.Verify(reqs[0].Header, reqs[0].Body); err != nil {
			t.Errorf("test event does not verify with %.10s…: %v", key, err)
		}
	}
	shot("subscription")

	// Pause and resume.
	run("pause", chromedp.Click(chromedp.CSS("#pause")), chromedp.WaitVisible(chromedp.CSS("#resume")))
	if s := text("#sub-status"); s != "paused" {
		t.Errorf("status after pause %q", s)
	}
	run("resume", chromedp.Click(chromedp.CSS("#resume")), chromedp.WaitVisible(chromedp.CSS("#pause")))

	// A dead letter: a subscription that fails its only attempt.
	bctxAPI := context.Background()
	failing := testkit.NewReceiver(t)
	failing.Respond(testkit.Statuses(500))
	doomed, err := st.Client.CreateSubscription(bctxAPI, &apiclient.SubscriptionCreate{
		URL: failing.URL() + "/inbox", Topics: []string{st.Source}, EventTypes: []string{"order.*"},
		MaxAttempts: 1, Description: "flaky partner",
	})
	if err != nil {
		t.Fatal(err)
	}
	cl := testkit.Client(t, st.Brokers, kgo.DefaultProduceTopic(st.Source))
	v, _ := json.Marshal(map[string]any{"order_id": 42, "total": 99.5})
	testkit.Produce(t, cl, &kgo.Record{Value: v, Headers: []kgo.RecordHeader{
		{Key: "ce_id", Value: []byte("order-42-created")}, {Key: "ce_type", Value: []byte("order.created")},
	}})
	testkit.Eventually(t, 30*time.Second, func() bool {
		d, err := st.Client.GetDetail(bctxAPI, doomed.ID)
		return err == nil && d.Health != nil && d.Health.DeadLetters == 1
	}, "the delivery is dead-lettered")
	recv.WaitFor(t, 2, 10*time.Second) // the healthy subscription got the order too

	run("dead letters", chromedp.Click(chromedp.CSS(`a[href="/ui/dlq"]`)), chromedp.WaitVisible(chromedp.CSS("#dead-letters")))
	if dl := text("#dead-letters"); !strings.Contains(dl, doomed.ID) || !strings.Contains(dl, "attempts_exhausted") {
		t.Errorf("dead letters %q", dl)
	}
	shot("dlq")
	failing.Respond(testkit.Statuses(200))
	run("replay", chromedp.Click(chromedp.CSS("button.replay")), chromedp.WaitVisible(chromedp.CSS("#replayed")))
	if msg := text("#replayed"); !strings.Contains(msg, "Replayed 1 dead letter") {
		t.Errorf("replay notice %q", msg)
	}
	testkit.Eventually(t, 30*time.Second, func() bool { return failing.Count() >= 2 }, "the replayed delivery arrives")

	// Two more for the overview: a paused one, and one whose circuit is open.
	if _, err := st.Client.CreateSubscription(bctxAPI, &apiclient.SubscriptionCreate{
		URL: "https://partner.example.com/herald", Topics: []string{st.Source}, Status: "paused",
	}); err != nil {
		t.Fatal(err)
	}
	tripped, err := st.Client.CreateSubscription(bctxAPI, &apiclient.SubscriptionCreate{
		URL: "https://crm.example.net/webhooks/orders", Topics: []string{st.Source}, EventTypes: []string{"order.paid"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		st.Breaker.Failure(tripped.ID)
	}

	// The list shows every subscription with its health.
	run("subscriptions", chromedp.Click(chromedp.CSS(`a[href="/ui/"]`)), chromedp.WaitVisible(chromedp.CSS("#subscriptions")))
	list := text("#subscriptions")
	for _, want := range []string{subID, doomed.ID, tripped.ID, "100%", "closed", "open", "paused"} {
		if !strings.Contains(list, want) {
			t.Errorf("subscriptions list lacks %q: %q", want, list)
		}
	}
	shot("dashboard")

	// Signing out ends the session.
	run("sign out", chromedp.Click(chromedp.CSS("button.link")), chromedp.WaitVisible(chromedp.CSS("#token")))
	t.Logf("screenshots in %s", out)
}
