package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/herald-dev/herald/internal/cli"
	"github.com/herald-dev/herald/internal/config"
)

// childEnv makes ServeIfChild run `herald serve`: how scenario 7 runs
// herald as a process of its own when no herald binary is given.
const childEnv = "HERALD_BENCH_SERVE"

// ServeIfChild runs `herald serve` and exits when scenario 7 started this
// process as herald; otherwise it returns at once. Programs and tests that
// run the benchmark without naming a herald binary call it first thing.
func ServeIfChild() {
	if os.Getenv(childEnv) == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := cli.NewRoot()
	root.SetArgs([]string{"serve"})
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// child is herald running as a separate process.
type child struct {
	cmd  *exec.Cmd
	api  string
	log  *syncBuffer
	done chan error
}

// startChild runs herald serve with cfg passed as HERALD_* variables and
// waits until /readyz answers 200.
func (r *runner) startChild(ctx context.Context, cfg config.Config) (*child, error) {
	api, err := freeAddr()
	if err != nil {
		return nil, err
	}
	argv := r.cfg.Herald
	env := heraldEnv(cfg, api)
	if len(argv) == 0 {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		argv = []string{self}
		env = append(env, childEnv+"=1")
	} else {
		argv = append(append([]string(nil), argv...), "serve")
	}
	c := &child{api: api, log: new(syncBuffer), done: make(chan error, 1)}
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Env = env
	c.cmd.Stdout = c.log
	c.cmd.Stderr = c.log
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting herald: %w", err)
	}
	go func() { c.done <- c.cmd.Wait() }()

	hc := &http.Client{Timeout: time.Second}
	for {
		resp, err := hc.Get("http://" + api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		select {
		case err := <-c.done:
			c.done <- err
			return nil, fmt.Errorf("herald exited before it was ready (%v): %s", err, tail(c.log.String()))
		case <-ctx.Done():
			c.stop()
			return nil, fmt.Errorf("herald not ready: %w: %s", ctx.Err(), tail(c.log.String()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// rssKB reads the child's current and peak resident set in kB.
func (c *child) rssKB() (rss, peak int64, err error) {
	path := "/proc/" + strconv.Itoa(c.cmd.Process.Pid) + "/status"
	rss, ok1 := procField(path, "VmRSS")
	peak, ok2 := procField(path, "VmHWM")
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("cannot read VmRSS/VmHWM from %s", path)
	}
	return rss, peak, nil
}

// stop sends SIGTERM and waits for herald's drain.
func (c *child) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		c.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("herald exited with %v: %s", err, tail(c.log.String()))
		}
		return err
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
		return errors.New("herald did not stop within a minute of SIGTERM")
	}
}

// heraldEnv is cfg as the HERALD_* variables DESIGN.md fixes, plus the
// environment without any HERALD_* of the caller's.
func heraldEnv(cfg config.Config, api string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"HERALD_KAFKA_BROKERS="+strings.Join(cfg.Kafka.Brokers, ","),
		"HERALD_REDIS_URL="+cfg.Redis.URL,
		"HERALD_SOURCE_TOPICS="+strings.Join(cfg.SourceTopics(), ","),
		"HERALD_API_LISTEN="+api,
		"HERALD_API_TOKENS="+strings.Join(cfg.API.Tokens, ","),
		"HERALD_MASTER_KEY="+cfg.Secrets.MasterKey,
		"HERALD_ALLOW_PRIVATE_NETWORKS=true",
		"HERALD_TOPIC_PREFIX="+cfg.Topics.Prefix,
		"HERALD_GROUP="+cfg.Kafka.Group,
		"HERALD_KAFKA_RETRY_GROUP="+cfg.Kafka.RetryGroup,
		"HERALD_LOG_LEVEL=warn",
	)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func tail(s string) string {
	const n = 2000
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}

// syncBuffer is herald's output, written by exec's copying goroutine and
// read on failure.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
