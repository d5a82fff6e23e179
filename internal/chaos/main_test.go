package chaos

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/herald-dev/herald/internal/testkit"
)

// heraldBin is the herald binary every scenario runs, built once by TestMain.
var heraldBin string

// repoRoot is the module root, where deploy/local lives.
var repoRoot string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	repoRoot = root
	if testkit.Real() {
		reapLeftovers()
		if heraldBin = os.Getenv("HERALD_CHAOS_BIN"); heraldBin != "" {
			fmt.Fprintf(os.Stderr, "chaos: running %s; size %s\n", heraldBin, size())
			return runTests(m)
		}
		dir, err := os.MkdirTemp("", "herald-chaos-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		start := time.Now()
		if heraldBin, err = build(dir); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: building herald:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "chaos: built %s in %v; size %s\n", heraldBin, time.Since(start).Round(time.Millisecond), size())
	}
	return runTests(m)
}

func runTests(m *testing.M) int {
	code := m.Run()
	printSummary(os.Stdout)
	if code == 0 {
		if err := goleak.Find(testkit.LeakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: goroutines leaked:", err)
			return 1
		}
	}
	return code
}

// build compiles cmd/herald into dir, with the race detector when
// HERALD_CHAOS_RACE is set (slower, so off by default). HERALD_CHAOS_BIN
// names a binary to run instead.
func build(dir string) (string, error) {
	bin := filepath.Join(dir, "herald")
	//lint:ignore SA1019 the toolchain that built this test is the one to build herald with
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		goCmd = "go"
	}
	args := []string{"build", "-o", bin}
	if os.Getenv("HERALD_CHAOS_RACE") != "" {
		args = append(args, "-race")
	}
	cmd := exec.Command(goCmd, append(args, "./cmd/herald")...)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return bin, nil
}

// needServices skips t unless a real broker is configured.
func needServices(t *testing.T) {
	t.Helper()
	if !testkit.Real() {
		t.Skipf("the fault suite kills processes and restarts brokers, which an embedded broker cannot model: set %s (make test and make chaos do)", testkit.EnvKafka)
	}
	if heraldBin == "" {
		t.Fatal("herald binary was not built")
	}
}
