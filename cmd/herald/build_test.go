package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestMakeBuildsWithSmallStacks pins the Makefile's builds of herald and of
// its benchmark to goroutines that start with 2 KiB stacks (see
// HERALD_LDFLAGS there): herald waits for every response on a goroutine of
// its own, and BENCHMARKS.md's scenario 7 measures what that costs.
func TestMakeBuildsWithSmallStacks(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	out, err := exec.Command("make", "-n", "-C", "../..", "build", "bench").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n: %v\n%s", err, out)
	}
	var builds int
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, "go build") && !strings.Contains(line, "go run") {
			continue
		}
		builds++
		if !strings.Contains(line, "-X=runtime.godebugDefault=adaptivestackstart=0") {
			t.Errorf("built without small goroutine stacks: %s", line)
		}
	}
	if builds != 2 {
		t.Fatalf("found %d go build/run commands in make build bench, want herald's and the benchmark's:\n%s", builds, out)
	}
}
