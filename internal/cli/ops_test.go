package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/herald-dev/herald/internal/api/apitest"
	"github.com/herald-dev/herald/internal/testkit"
)

// startStack runs a whole herald in process and points the CLI at it.
func startStack(t *testing.T) *apitest.Stack {
	t.Helper()
	st := apitest.Start(t, apitest.Options{})
	t.Setenv("HERALD_SERVER", st.URL)
	t.Setenv("HERALD_TOKEN", apitest.Token)
	return st
}

// runCmd executes cmd with args and returns stdout and stderr.
func runCmd(t *testing.T, cmd *cobra.Command, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestSubsPauseTestAttempts(t *testing.T) {
	st := startStack(t)
	recv := testkit.NewReceiver(t)

	out, _ := mustRun(t, "create", "--url", recv.URL(), "--topic", st.Source, "--signing", "ed25519")
	if !strings.Contains(out, "Public key: whpk_") || !strings.Contains(out, "Secret: whsec_") {
		t.Fatalf("create --signing ed25519:\n%s", out)
	}
	var id string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "ID:" {
			id = f[1]
		}
	}

	out, _ = mustRun(t, "pause", id)
	if strings.TrimSpace(out) != id+" is paused" {
		t.Errorf("pause printed %q", out)
	}
	if s, _ := st.Store.Get(id); s.Status != "paused" {
		t.Errorf("status %s after pause", s.Status)
	}
	out, _ = mustRun(t, "test", id)
	if !strings.Contains(out, "Delivered:") || !strings.Contains(out, "true") || !strings.Contains(out, "200") {
		t.Errorf("test on a paused subscription:\n%s", out)
	}
	out, _ = mustRun(t, "resume", id, "-o", "json")
	if !strings.Contains(out, `"status": "active"`) {
		t.Errorf("resume -o json: %s", out)
	}

	recv.Respond(testkit.Statuses(http.StatusServiceUnavailable))
	out, _, err := run(t, "test", id)
	if err == nil || !strings.Contains(err.Error(), "not delivered") || !strings.Contains(out, "503") {
		t.Errorf("failing test: %v\n%s", err, out)
	}

	out, _ = mustRun(t, "attempts", id)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[1], "503") || !strings.Contains(lines[2], "herald.test") {
		t.Errorf("attempts:\n%s", out)
	}
	out, _ = mustRun(t, "attempts", id, "--limit", "1", "-o", "json")
	var page struct{ Data []map[string]any }
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Data) != 1 {
		t.Errorf("attempts -o json: %v %s", err, out)
	}

	out, _ = mustRun(t, "get", id)
	for _, want := range []string{"Success (recent):", "50% of 2", "Circuit:", "closed", "Dead letters:", "HTTP 503"} {
		if !strings.Contains(out, want) {
			t.Errorf("get lacks %q:\n%s", want, out)
		}
	}
	out, _ = mustRun(t, "list", "--health")
	if !strings.Contains(out, "SUCCESS") || !strings.Contains(out, "50% of 2") {
		t.Errorf("list --health:\n%s", out)
	}
}

func TestEventsSend(t *testing.T) {
	st := startStack(t)
	recv := testkit.NewReceiver(t)
	mustRun(t, "create", "--url", recv.URL(), "--topic", st.Source, "--type", "order.*")

	send := func(args ...string) (string, error) {
		out, _, err := runCmd(t, NewEventsCommand(), append([]string{"send"}, args...)...)
		return out, err
	}
	out, err := send("--type", "order.created", "--data", `{"order_id": 42}`, "--key", "order-42", "--idempotency-key", "create-42")
	if err != nil || !strings.HasPrefix(out, "Published evt_") {
		t.Fatalf("send: %v %q", err, out)
	}
	id := strings.TrimSpace(strings.TrimPrefix(out, "Published "))
	out, err = send("--type", "order.created", "--data", `{"order_id": 42}`, "--key", "order-42", "--idempotency-key", "create-42", "-o", "json")
	var again struct {
		ID       string `json:"id"`
		Replayed bool   `json:"replayed"`
	}
	if err != nil || json.Unmarshal([]byte(out), &again) != nil || again.ID != id || !again.Replayed {
		t.Errorf("the same key again: %v %s", err, out)
	}
	recv.WaitFor(t, 1, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	if n := recv.Count(); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--data", `{}`}, "--type"},
		{[]string{"--type", "a"}, "--data"},
		{[]string{"--type", "a", "--data", `{nope`}, "not valid JSON"},
		{[]string{"--type", "a", "--data", `{}`, "--idempotency-key", "create-42"}, "422"},
	} {
		if _, err := send(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("send %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestCompletion(t *testing.T) {
	st := startStack(t)
	out, _ := mustRun(t, "create", "--url", "https://hooks.example.com/a", "-o", "json")
	var c struct{ ID string }
	_ = json.Unmarshal([]byte(out), &c)
	_ = st

	root := func() *cobra.Command {
		r := &cobra.Command{Use: "herald"}
		r.AddCommand(NewSubsCommand(), NewEventsCommand(), NewCompletionCommand())
		return r
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		out, _, err := runCmd(t, root(), "completion", shell)
		if err != nil || !strings.Contains(out, "herald") {
			t.Errorf("completion %s: %v (%d bytes)", shell, err, len(out))
		}
	}
	if _, _, err := runCmd(t, root(), "completion", "tcsh"); err == nil {
		t.Error("completion tcsh succeeded")
	}
	out, _, err := runCmd(t, root(), cobra.ShellCompRequestCmd, "subs", "get", "sub_")
	if err != nil || !strings.Contains(out, c.ID+"\thttps://hooks.example.com/a") {
		t.Errorf("completing an id: %v\n%s", err, out)
	}
	out, _, _ = runCmd(t, root(), cobra.ShellCompRequestCmd, "subs", "get", c.ID, "")
	if strings.Contains(out, c.ID) {
		t.Errorf("get takes one id, yet a second is offered:\n%s", out)
	}
}
