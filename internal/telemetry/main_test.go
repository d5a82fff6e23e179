package telemetry_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/herald-dev/herald/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(testkit.LeakOptions(),
		// The OTLP/HTTP exporter keeps its keep-alive connections to the
		// collector in a package-level transport that Shutdown leaves open;
		// only the acceptance test exports to a collector that outlives it.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)...)
}
