package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/herald-dev/herald/internal/testkit"
)

func TestMain(m *testing.M) {
	// Scenario 7 runs herald as this test binary (ServeIfChild).
	ServeIfChild()
	goleak.VerifyTestMain(m, testkit.LeakOptions()...)
}

// TestShort runs every scenario at smoke sizes end to end, so that the
// benchmark cannot rot between full runs. Figures are not judged; the
// properties herald promises whatever the machine are.
func TestShort(t *testing.T) {
	cfg := Short()
	cfg.Brokers = testkit.Kafka(t)
	cfg.RedisURL = testkit.Redis(t)
	cfg.Log = zaptest.NewLogger(t).Named("bench")
	cfg.Timeout = 45 * time.Second

	var out bytes.Buffer
	res, err := Run(t.Context(), cfg, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Errors {
		t.Error(e)
	}
	if len(res.Targets) != 0 {
		t.Errorf("a short run judged %d targets", len(res.Targets))
	}

	if l := res.Limit; l == nil || l.DeliveriesPerSec <= 0 {
		t.Errorf("limit = %+v", l)
	}
	if tp := res.Throughput; tp == nil || tp.Delivered != int64(cfg.ThroughputEvents) || tp.ThroughputRatio <= 0 {
		t.Errorf("throughput = %+v", tp)
	} else if l := res.Limit; tp.LimitAfterPerSec <= 0 || l != nil && (tp.LimitAfterPerSec == l.DeliveriesPerSec || tp.LimitPerSec != l.DeliveriesPerSec) {
		t.Errorf("scenario 2's limits: %v before (scenario 1: %+v), %v after; want scenario 1's before and one measured again after",
			tp.LimitPerSec, l, tp.LimitAfterPerSec)
	}
	if l := res.Latency; l == nil || l.Herald.Received != l.Herald.Sent || l.Herald.P99MS <= 0 || l.Baseline == nil || l.P99Ratio <= 0 {
		t.Errorf("latency = %+v", l)
	}
	if f := res.Fanout; f == nil || f.Delivered != int64(cfg.FanoutSubscriptions*cfg.FanoutEvents) || f.ThroughputRatio <= 0 {
		t.Errorf("fanout = %+v", f)
	} else if l := res.Limit; l != nil && f.LimitPerSec == l.DeliveriesPerSec {
		// Two measurements of a rate agree to a tenth of a delivery a
		// second only when the second was not taken.
		t.Errorf("fan-out's baseline %v is scenario 1's, not the limit measured again next to it", f.LimitPerSec)
	}
	if m := res.Matching; m == nil || len(m.Cases) == 0 || m.Cases[0].AllocsPerOp != 0 {
		t.Errorf("matching = %+v (a non-matching event must not allocate)", m)
	}
	if r := res.Retry; r == nil || r.Retried != cfg.RetryDeliveries || r.Early != 0 {
		t.Errorf("retry = %+v (every delivery retried once, none early)", r)
	}
	if m := res.Memory; m == nil || m.IdleRSSMB <= 0 || m.InFlightReached < int64(cfg.InFlight) || m.ThroughputPeakRSSMB <= 0 {
		t.Errorf("memory = %+v", m)
	}

	for _, want := range []string{"1 limit", "2 throughput", "3 latency", "4 fan-out", "5 matching", "6 retry", "7 memory"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table has no %q row", want)
		}
	}
	checkRatioNames(t, res)
}

// checkRatioNames pins the results.json contract: scenario 2's ratio is
// throughput.throughput_ratio, and every ratio sits in a field whose name
// ends in "ratio".
func checkRatioNames(t *testing.T, res *Results) {
	t.Helper()
	b, err := res.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	tp, _ := doc["throughput"].(map[string]any)
	if _, ok := tp["throughput_ratio"]; !ok {
		t.Errorf("results.json has no throughput.throughput_ratio: %s", b)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if strings.Contains(k, "ratio") && !strings.HasSuffix(k, "ratio") {
					t.Errorf("%s.%s: a ratio field must end in \"ratio\"", path, k)
				}
				walk(path+"."+k, e)
			}
		case []any:
			for _, e := range v {
				walk(path+"[]", e)
			}
		}
	}
	walk("", doc)
}

func TestMakeEvent(t *testing.T) {
	sent := time.Unix(1_700_000_000, 123)
	ev := makeEvent(42, 1024, eventType, sent)
	if len(ev) != 1024 {
		t.Errorf("event is %d bytes, want 1024", len(ev))
	}
	var v struct {
		Type string `json:"type"`
		Sent int64  `json:"sent_ns"`
	}
	if err := json.Unmarshal(ev, &v); err != nil {
		t.Fatalf("event is not JSON: %v", err)
	}
	if v.Type != eventType || v.Sent != sent.UnixNano() {
		t.Errorf("event = %+v", v)
	}
	envelope := append([]byte(`{"type":"x","timestamp":"t","data":`), append(ev, '}')...)
	if got, ok := sentNanos(envelope); !ok || got != sent.UnixNano() {
		t.Errorf("sentNanos(envelope) = %d, %v; want %d", got, ok, sent.UnixNano())
	}
}
