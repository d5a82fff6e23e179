package retry

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestParseHeadersReadsPastACorruptOne pins a bug: ParseHeaders stopped at
// the first unreadable header, so a corrupt retry record forwarded to
// herald.dlq was listed without its dead-letter reason, which
// DeadLetterRecord appends after the record's own headers.
func TestParseHeadersReadsPastACorruptOne(t *testing.T) {
	hs := []kgo.RecordHeader{
		{Key: HeaderDeliveryID, Value: []byte("msg_1")},
		{Key: HeaderAttempt, Value: []byte("two")},
		{Key: HeaderDueAt, Value: []byte("tomorrow")},
		{Key: HeaderSubscriptionID, Value: []byte("sub_1")},
		{Key: HeaderDLQReason, Value: []byte("corrupt_record: herald-attempt")},
		{Key: HeaderRetrySource, Value: []byte("herald.retry.10s/0/5")},
	}
	h, err := ParseHeaders(hs)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Header != HeaderAttempt {
		t.Fatalf("error %v, want the first unreadable header, %s", err, HeaderAttempt)
	}
	if h.DeliveryID != "msg_1" || h.SubscriptionID != "sub_1" || h.DLQReason != "corrupt_record: herald-attempt" ||
		h.RetrySource != "herald.retry.10s/0/5" {
		t.Fatalf("headers after the corrupt one were not read: %+v", h)
	}
	if h.Attempt != 0 || !h.DueAt.IsZero() {
		t.Fatalf("unreadable headers kept a value: attempt %d, due %v", h.Attempt, h.DueAt)
	}
}
