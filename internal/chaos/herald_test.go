package chaos

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// instance is one herald process.
type instance struct {
	name string
	addr string // admin API
	log  string // stdout and stderr
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

// start runs a herald process of d and waits until it is ready.
func (d *deployment) start(name string) *instance {
	d.t.Helper()
	in := &instance{
		name: name,
		addr: freeAddr(d.t),
		log:  filepath.Join(d.dir, name+".log"),
		done: make(chan struct{}),
	}
	logFile, err := os.OpenFile(in.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	cmd := exec.Command(heraldBin, "serve")
	cmd.Env = append(d.env(), "HERALD_API_LISTEN="+in.addr, "HERALD_KAFKA_CLIENT_ID=herald-chaos-"+name)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The kernel kills herald should this test process die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		d.t.Fatalf("starting herald %s: %v", name, err)
	}
	in.cmd = cmd
	go func() {
		in.err = cmd.Wait()
		logFile.Close()
		close(in.done)
	}()
	d.instances = append(d.instances, in)
	d.t.Cleanup(func() { in.kill(d.t) })

	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-in.done:
			d.t.Fatalf("herald %s exited during start-up (%v):\n%s", name, in.err, tail(in.log, 30))
		default:
		}
		if ready(in.addr) {
			return in
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("herald %s not ready after 90s:\n%s", name, tail(in.log, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// apiClient talks to the instances' admin APIs without keeping connections
// to processes that may be killed.
var apiClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func ready(addr string) bool {
	resp, err := apiClient.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// running reports whether the process has not exited.
func (in *instance) running() bool {
	select {
	case <-in.done:
		return false
	default:
		return true
	}
}

// kill is kill -9, by pid.
func (in *instance) kill(t *testing.T) {
	if !in.running() {
		return
	}
	_ = in.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-in.done:
	case <-time.After(10 * time.Second):
		t.Errorf("herald %s (pid %d) still running 10s after SIGKILL", in.name, in.cmd.Process.Pid)
	}
}

// terminate sends SIGTERM and waits for the drain; it fails t unless
// herald exits 0 within limit.
func (in *instance) terminate(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to herald %s: %v", in.name, err)
	}
	select {
	case <-in.done:
	case <-time.After(limit):
		t.Fatalf("herald %s did not exit within %v of SIGTERM:\n%s", in.name, limit, tail(in.log, 30))
	}
	if in.err != nil {
		t.Fatalf("herald %s exited with %v after SIGTERM:\n%s", in.name, in.err, tail(in.log, 30))
	}
	return time.Since(start)
}

// api calls the admin API of in and decodes a JSON reply into out.
func (d *deployment) api(in *instance, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+in.addr+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := apiClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %v: %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, nil
}

// subscribe creates a subscription of every event of the source topic
// through in's admin API, tells r its secret, and waits until every running
// instance knows it.
func (d *deployment) subscribe(in *instance, r *receiver) string {
	d.t.Helper()
	var created struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	body := map[string]any{"url": r.URL() + "/hook", "topics": []string{d.source}, "event_types": []string{"*"}}
	if _, err := d.api(in, http.MethodPost, "/v1/subscriptions", body, &created); err != nil {
		d.t.Fatalf("create subscription: %v", err)
	}
	r.verify(d.t, created.Secret)
	for _, other := range d.instances {
		if !other.running() {
			continue
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, err := d.api(other, http.MethodGet, "/v1/subscriptions/"+created.ID, nil, nil)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				d.t.Fatalf("herald %s does not know subscription %s after 30s: %d %v", other.name, created.ID, code, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return created.ID
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func freePort(t *testing.T) string {
	_, port, _ := net.SplitHostPort(freeAddr(t))
	return port
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// occurrences counts s in the file at path.
func occurrences(path, s string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(s))
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func randomToken() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return "chaos-" + base64.RawURLEncoding.EncodeToString(b)
}
