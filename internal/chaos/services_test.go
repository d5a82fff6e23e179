package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A service is a Kafka broker or a redis-server of one test's own, started
// and stopped with the deploy/local scripts: restarting the shared ones would
// break every other test running at the same time. Each lives under its own
// HERALD_LOCAL_DIR, which also records the test process's pid and the ports,
// so that a run killed by a timeout has its leftovers stopped by the next.
type service struct {
	kind string // "kafka" or "redis"
	dir  string
	env  []string
	addr string // what start printed
}

const leftoverRoot = "herald-chaos-services"

// startService starts kind ("kafka" or "redis") on free ports and stops it
// when t ends.
func startService(t *testing.T, kind string) *service {
	t.Helper()
	root := filepath.Join(os.TempDir(), leftoverRoot)
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(root, fmt.Sprintf("%d-%s-", os.Getpid(), kind))
	if err != nil {
		t.Fatal(err)
	}
	s := &service{kind: kind, dir: dir, env: []string{"HERALD_LOCAL_DIR=" + dir}}
	switch kind {
	case "kafka":
		s.env = append(s.env,
			"HERALD_KAFKA_PORT="+freePort(t),
			"HERALD_KAFKA_CONTROLLER_PORT="+freePort(t),
			"HERALD_KAFKA_HEAP=-Xms128m -Xmx384m")
	case "redis":
		s.env = append(s.env, "HERALD_REDIS_PORT="+freePort(t))
	}
	if err := os.WriteFile(filepath.Join(dir, "env"), []byte(strings.Join(s.env, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.run("stop"); err != nil {
			t.Errorf("stopping %s: %v", kind, err)
		}
		_ = os.RemoveAll(dir)
	})
	start := time.Now()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("own %s at %s, ready in %v", kind, s.addr, time.Since(start).Round(time.Millisecond))
	return s
}

func (s *service) start() error {
	out, err := s.output("start")
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	s.addr = lines[len(lines)-1]
	return nil
}

func (s *service) stop() error { return s.run("stop") }

func (s *service) run(cmd string) error {
	_, err := s.output(cmd)
	return err
}

func (s *service) output(cmd string) (string, error) {
	c := exec.Command(filepath.Join(repoRoot, "deploy", "local", s.kind+".sh"), cmd)
	c.Env = append(os.Environ(), s.env...)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return "", fmt.Errorf("%s.sh %s: %v\n%s", s.kind, cmd, err, stderr.String())
	}
	return string(out), nil
}

// reapLeftovers stops the services of earlier runs whose test process is
// gone (a run killed by its timeout skips its cleanups).
func reapLeftovers() {
	root := filepath.Join(os.TempDir(), leftoverRoot)
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		pidStr, kind, ok := strings.Cut(e.Name(), "-")
		if !ok {
			continue
		}
		kind, _, _ = strings.Cut(kind, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || alive(pid) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		env, err := os.ReadFile(filepath.Join(dir, "env"))
		if err == nil {
			s := &service{kind: kind, dir: dir, env: strings.Split(strings.TrimSpace(string(env)), "\n")}
			if err := s.stop(); err != nil {
				fmt.Fprintf(os.Stderr, "chaos: stopping leftover %s in %s: %v\n", kind, dir, err)
				continue
			}
		}
		_ = os.RemoveAll(dir)
	}
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}
