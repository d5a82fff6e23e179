package retry

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header names on herald's own records (retry tiers and herald.dlq). See
// DESIGN.md, "Headers on herald's own records".
const (
	HeaderDeliveryID        = "herald-delivery-id"
	HeaderEventID           = "herald-event-id"
	HeaderEventType         = "herald-event-type"
	HeaderEventTime         = "herald-event-time" // unix ms
	HeaderEventKey          = "herald-event-key"  // the source record's key; the retry record's key is the subscription id
	HeaderContentType       = "herald-content-type"
	HeaderSubscriptionID    = "herald-subscription-id"
	HeaderAttempt           = "herald-attempt"          // the attempt this record will make
	HeaderDueAt             = "herald-due-at"           // unix ms, absolute
	HeaderFirstAttemptAt    = "herald-first-attempt-at" // unix ms, 0 before any
	HeaderSource            = "herald-source"           // topic/partition/offset of the source record
	HeaderLastStatus        = "herald-last-status"
	HeaderLastError         = "herald-last-error" // at most 1 KiB
	HeaderTraceParent       = "traceparent"       // the current hop
	HeaderOriginTraceParent = "herald-origin-traceparent"
	HeaderReplay            = "herald-replay" // "true" on deliveries re-injected from herald.dlq or a backfill

	// Dead letters only.
	HeaderDLQReason     = "herald-dlq-reason"
	HeaderAttempts      = "herald-attempts" // attempts made
	HeaderLastAttemptAt = "herald-last-attempt-at"
	// HeaderRetrySource is the position of a corrupt retry record that was
	// dead-lettered as it was.
	HeaderRetrySource = "herald-retry-source"
)

// MaxLastError bounds herald-last-error.
const MaxLastError = 1 << 10

const heraldPrefix = "herald-"

// Headers is the herald header set of a retry or dead-letter record, parsed.
type Headers struct {
	DeliveryID        string
	EventID           string
	EventType         string
	EventTime         time.Time
	EventKey          []byte
	ContentType       string
	SubscriptionID    string
	Attempt           int
	DueAt             time.Time
	FirstAttemptAt    time.Time
	Source            string
	LastStatus        int
	LastError         string
	TraceParent       string
	OriginTraceParent string
	Replay            bool

	DLQReason     string
	Attempts      int
	LastAttemptAt time.Time
	RetrySource   string

	// Original holds the source record's own headers (ce_*, content-type,
	// …), every one that is neither herald's nor traceparent, in order, so
	// a raw payload keeps its metadata across hops.
	Original []kgo.RecordHeader
}

// Encode renders h as record headers: herald's first, then Original.
// Optional headers are left out when empty; the required ones of a retry
// record are always written.
func (h *Headers) Encode() []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, 0, 20+len(h.Original))
	add := func(k, v string) { out = append(out, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	addOpt := func(k, v string) {
		if v != "" {
			add(k, v)
		}
	}
	add(HeaderDeliveryID, h.DeliveryID)
	add(HeaderEventID, h.EventID)
	add(HeaderEventType, h.EventType)
	addOpt(HeaderEventTime, millis(h.EventTime))
	if h.EventKey != nil {
		out = append(out, kgo.RecordHeader{Key: HeaderEventKey, Value: h.EventKey})
	}
	addOpt(HeaderContentType, h.ContentType)
	add(HeaderSubscriptionID, h.SubscriptionID)
	add(HeaderAttempt, strconv.Itoa(h.Attempt))
	addOpt(HeaderDueAt, millis(h.DueAt))
	add(HeaderFirstAttemptAt, zeroMillis(h.FirstAttemptAt))
	add(HeaderSource, h.Source)
	add(HeaderLastStatus, strconv.Itoa(h.LastStatus))
	add(HeaderLastError, truncateUTF8(h.LastError, MaxLastError))
	addOpt(HeaderTraceParent, h.TraceParent)
	addOpt(HeaderOriginTraceParent, h.OriginTraceParent)
	if h.Replay {
		add(HeaderReplay, "true")
	}
	addOpt(HeaderDLQReason, h.DLQReason)
	if h.DLQReason != "" {
		add(HeaderAttempts, strconv.Itoa(h.Attempts))
		addOpt(HeaderLastAttemptAt, millis(h.LastAttemptAt))
	}
	addOpt(HeaderRetrySource, h.RetrySource)
	return append(out, h.Original...)
}

// CorruptError says which header of a retry or dead-letter record is
// missing or unreadable.
type CorruptError struct {
	Header string
	Detail string
}

func (e *CorruptError) Error() string { return e.Header + " " + e.Detail }

// ParseHeaders reads the herald headers of a record. It fails only on a
// header that is present but unreadable; which headers must be present
// depends on the record (CheckRetry). Even then it reads every other
// header, so a corrupt record can still be told apart and its dead-letter
// reason shown; the error is the first unreadable header.
func ParseHeaders(hs []kgo.RecordHeader) (Headers, error) {
	var h Headers
	var first error
	for _, rh := range hs {
		var err error
		v := string(rh.Value)
		switch rh.Key {
		case HeaderDeliveryID:
			h.DeliveryID = v
		case HeaderEventID:
			h.EventID = v
		case HeaderEventType:
			h.EventType = v
		case HeaderEventTime:
			h.EventTime, err = parseMillis(rh.Key, v)
		case HeaderEventKey:
			h.EventKey = rh.Value
		case HeaderContentType:
			h.ContentType = v
		case HeaderSubscriptionID:
			h.SubscriptionID = v
		case HeaderAttempt:
			h.Attempt, err = parseCount(rh.Key, v)
		case HeaderDueAt:
			h.DueAt, err = parseMillis(rh.Key, v)
		case HeaderFirstAttemptAt:
			h.FirstAttemptAt, err = parseMillis(rh.Key, v)
		case HeaderSource:
			h.Source = v
		case HeaderLastStatus:
			h.LastStatus, err = parseCount(rh.Key, v)
		case HeaderLastError:
			h.LastError = v
		case HeaderTraceParent:
			h.TraceParent = v
		case HeaderOriginTraceParent:
			h.OriginTraceParent = v
		case HeaderReplay:
			h.Replay = v == "true"
		case HeaderDLQReason:
			h.DLQReason = v
		case HeaderAttempts:
			h.Attempts, err = parseCount(rh.Key, v)
		case HeaderLastAttemptAt:
			h.LastAttemptAt, err = parseMillis(rh.Key, v)
		case HeaderRetrySource:
			h.RetrySource = v
		default:
			if isOriginal(rh.Key) {
				h.Original = append(h.Original, rh)
			}
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return h, first
}

// CheckRetry reports the first header a retry record cannot do without.
func (h *Headers) CheckRetry() error {
	switch {
	case h.DeliveryID == "":
		return &CorruptError{HeaderDeliveryID, "is missing"}
	case h.EventID == "":
		return &CorruptError{HeaderEventID, "is missing"}
	case h.SubscriptionID == "":
		return &CorruptError{HeaderSubscriptionID, "is missing"}
	case h.Attempt < 1:
		return &CorruptError{HeaderAttempt, "is missing or below 1"}
	case h.DueAt.IsZero():
		return &CorruptError{HeaderDueAt, "is missing"}
	}
	if _, _, _, err := ParseSource(h.Source); err != nil {
		return err
	}
	return nil
}

// ParseSource splits "topic/partition/offset". Topic names cannot hold a
// slash, so the last two fields are the numbers.
func ParseSource(s string) (topic string, partition int32, offset int64, err error) {
	bad := &CorruptError{HeaderSource, fmt.Sprintf("%q is not topic/partition/offset", s)}
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return "", 0, 0, bad
	}
	j := strings.LastIndexByte(s[:i], '/')
	if j <= 0 {
		return "", 0, 0, bad
	}
	p, err1 := strconv.ParseInt(s[j+1:i], 10, 32)
	o, err2 := strconv.ParseInt(s[i+1:], 10, 64)
	if err1 != nil || err2 != nil || p < 0 || o < 0 {
		return "", 0, 0, bad
	}
	return s[:j], int32(p), o, nil
}

// OriginalHeaders returns the headers of a source record that travel with
// its retries: all but herald's own and the hop's traceparent.
func OriginalHeaders(hs []kgo.RecordHeader) []kgo.RecordHeader {
	var out []kgo.RecordHeader
	for _, h := range hs {
		if isOriginal(h.Key) {
			out = append(out, h)
		}
	}
	return out
}

func isOriginal(key string) bool {
	return !strings.HasPrefix(key, heraldPrefix) && key != HeaderTraceParent
}

func millis(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

func zeroMillis(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return millis(t)
}

// maxMillis is the last millisecond of year 9999: later times cannot be
// written as RFC 3339, so a dead letter carrying one could not be listed.
const maxMillis = 253402300799999

func parseMillis(key, v string) (time.Time, error) {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 || ms > maxMillis {
		return time.Time{}, &CorruptError{key, fmt.Sprintf("%q is not unix milliseconds", truncateUTF8(v, 64))}
	}
	if ms == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(ms), nil
}

func parseCount(key, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, &CorruptError{key, fmt.Sprintf("%q is not a count", truncateUTF8(v, 64))}
	}
	return n, nil
}

// truncateUTF8 cuts s to at most max bytes without splitting a rune.
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}
