package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.uber.org/goleak"

	"github.com/herald-dev/herald/internal/api"
	"github.com/herald-dev/herald/internal/subscription"
	"github.com/herald-dev/herald/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testkit.LeakOptions()...)
}

const cliToken = "cli-test-token"

// startAPI serves the admin API on the Kafka-backed store (an embedded
// broker) and points HERALD_SERVER and HERALD_TOKEN at it.
func startAPI(t *testing.T) *subscription.Store {
	t.Helper()
	seeds := testkit.Kafka(t)
	topic := testkit.Topic(t, "herald.subscriptions")
	actx, acancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := subscription.EnsureTopic(actx, kadm.NewClient(testkit.Client(t, seeds)), topic)
	acancel()
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, subscription.MasterKeySize)
	_, _ = rand.Read(key)
	cipher, err := subscription.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	store := subscription.NewStore(seeds, topic, cipher)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- store.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := store.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(api.New(api.Config{Tokens: []string{cliToken}}, api.Deps{Store: store}))
	t.Cleanup(srv.Close)
	t.Setenv("HERALD_SERVER", srv.URL)
	t.Setenv("HERALD_TOKEN", cliToken)
	return store
}

// run executes `herald subs args…` and returns stdout and stderr.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := NewSubsCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func mustRun(t *testing.T, args ...string) (string, string) {
	t.Helper()
	out, errOut, err := run(t, args...)
	if err != nil {
		t.Fatalf("herald subs %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out, errOut
}

func TestSubsLifecycle(t *testing.T) {
	store := startAPI(t)

	out, errOut := mustRun(t, "create", "--url", "https://hooks.example.com/in",
		"--topic", "orders", "--topic", "payments", "--type", "order.*",
		"--header", "x-team=billing", "--header", "x-env=a=b", "--rate-limit", "20",
		"--max-in-flight", "4", "--timeout", "5s", "--max-attempts", "7",
		"--description", "billing hooks", "--tenant", "acme", "-o", "json")
	var created struct {
		subscription.Subscription
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("create -o json printed %q: %v", out, err)
	}
	if !strings.HasPrefix(created.Secret, "whsec_") || !strings.Contains(errOut, "will not be shown again") {
		t.Errorf("create: secret %q, stderr %q", created.Secret, errOut)
	}
	got, ok := store.Get(created.ID)
	if !ok {
		t.Fatalf("%s not in the store", created.ID)
	}
	if got.URL != "https://hooks.example.com/in" || strings.Join(got.Topics, ",") != "orders,payments" ||
		strings.Join(got.EventTypes, ",") != "order.*" || got.Headers["x-team"] != "billing" || got.Headers["x-env"] != "a=b" ||
		got.RateLimitPerSecond != 20 || got.MaxInFlight != 4 || got.TimeoutMS != 5000 || got.MaxAttempts != 7 ||
		got.Description != "billing hooks" || got.Tenant != "acme" {
		t.Errorf("stored %+v", got)
	}

	// Table output prints the secret too, once.
	out, _ = mustRun(t, "create", "--url", "https://other.example.com", "--topic", "orders")
	if !strings.Contains(out, "Secret: whsec_") || !strings.Contains(out, "https://other.example.com") {
		t.Errorf("create table output:\n%s", out)
	}

	// From a file.
	file := filepath.Join(t.TempDir(), "sub.json")
	if err := os.WriteFile(file, []byte(`{"url": "https://file.example.com", "topics": ["payments"], "status": "paused"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ = mustRun(t, "create", "--file", file, "-o", "json")
	var fromFile subscription.Subscription
	if err := json.Unmarshal([]byte(out), &fromFile); err != nil || fromFile.Status != "paused" {
		t.Errorf("create --file: %v %s", err, out)
	}

	out, _ = mustRun(t, "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(out, created.ID) ||
		!strings.Contains(out, "orders,payments") {
		t.Errorf("list table:\n%s", out)
	}
	out, _ = mustRun(t, "list", "--topic", "payments", "--status", "paused", "-o", "json")
	var page struct {
		Data       []subscription.Subscription `json:"data"`
		NextCursor string                      `json:"next_cursor"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Data) != 1 || page.Data[0].ID != fromFile.ID {
		t.Errorf("list filtered: %v %s", err, out)
	}
	out, errOut = mustRun(t, "list", "--limit", "2")
	if strings.Count(strings.TrimSpace(out), "\n") != 2 || !strings.Contains(errOut, "--cursor") {
		t.Errorf("first page of 2:\n%s\nstderr %s", out, errOut)
	}
	out, _ = mustRun(t, "list", "--limit", "2", "--all", "-o", "json")
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Data) != 3 || page.NextCursor != "" {
		t.Errorf("list --all: %v %s", err, out)
	}

	out, _ = mustRun(t, "get", created.ID)
	for _, want := range []string{"ID:", created.ID, "billing hooks", "x-env=a=b,x-team=billing", "5s", "Version:"} {
		if !strings.Contains(out, want) {
			t.Errorf("get output lacks %q:\n%s", want, out)
		}
	}

	out, _ = mustRun(t, "update", created.ID, "--status", "paused", "--topic", "orders",
		"--if-version", "1", "-o", "json")
	var updated subscription.Subscription
	if err := json.Unmarshal([]byte(out), &updated); err != nil || updated.Status != "paused" ||
		strings.Join(updated.Topics, ",") != "orders" || updated.Version != 2 || updated.Tenant != "acme" {
		t.Errorf("update: %v %s", err, out)
	}
	_, _, err := run(t, "update", created.ID, "--status", "active", "--if-version", "1")
	if err == nil || !strings.Contains(err.Error(), "412") {
		t.Errorf("update with a stale version: %v", err)
	}

	out, errOut = mustRun(t, "rotate-secret", created.ID, "--grace", "1h")
	if !strings.HasPrefix(out, "Secret: whsec_") || strings.Contains(out, created.Secret) ||
		!strings.Contains(errOut, "1h0m0s") {
		t.Errorf("rotate-secret: %q %q", out, errOut)
	}

	out, _ = mustRun(t, "delete", created.ID)
	if strings.TrimSpace(out) != "Deleted "+created.ID {
		t.Errorf("delete printed %q", out)
	}
	_, _, err = run(t, "get", created.ID)
	if err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "404") {
		t.Errorf("get after delete: %v", err)
	}
}

func TestSubsErrors(t *testing.T) {
	startAPI(t)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"invalid url names the field", []string{"create", "--url", "ftp://x"}, []string{`field "url"`, "HTTP 400"}},
		{"empty stdin", []string{"create", "--file", "-"}, []string{"not valid JSON"}},
		{"missing url", []string{"create", "--topic", "orders"}, []string{"--url is required"}},
		{"bad header flag", []string{"create", "--url", "https://e.com", "--header", "novalue"}, []string{"--header", "name=value"}},
		{"sub-millisecond timeout", []string{"create", "--url", "https://e.com", "--timeout", "1500us"}, []string{"--timeout"}},
		{"file and flags", []string{"create", "--file", "x.json", "--url", "https://e.com"}, []string{"cannot be combined"}},
		{"empty update", []string{"update", "sub_x"}, []string{"nothing to change"}},
		{"unknown id", []string{"get", "sub_nope"}, []string{"not found", "404"}},
		{"bad status filter", []string{"list", "--status", "sleeping"}, []string{`field "status"`}},
		{"bad output", []string{"list", "-o", "yaml"}, []string{"table or json"}},
		{"wrong token", []string{"list", "--token", "guess"}, []string{"401", "HERALD_TOKEN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, tc.args...)
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
}

func TestSubsFileUnknownField(t *testing.T) {
	startAPI(t)
	file := filepath.Join(t.TempDir(), "sub.json")
	if err := os.WriteFile(file, []byte(`{"url": "https://e.com", "retries": 3}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, "create", "-f", file)
	if err == nil || !strings.Contains(err.Error(), `field "retries"`) || !strings.Contains(err.Error(), "validation_failed") {
		t.Errorf("unknown field in --file: %v", err)
	}
}

func TestSubsNoServer(t *testing.T) {
	t.Setenv("HERALD_TOKEN", "")
	if _, _, err := run(t, "list"); err == nil || !strings.Contains(err.Error(), "HERALD_TOKEN") {
		t.Errorf("without a token: %v", err)
	}
	// A port nothing listens on: the listener is closed before the call.
	srv := httptest.NewServer(nil)
	addr := srv.URL
	srv.Close()
	_, _, err := run(t, "list", "--server", addr, "--token", "t")
	if err == nil || !strings.Contains(err.Error(), "cannot reach herald at "+addr) {
		t.Errorf("unreachable server: %v", err)
	}
}
