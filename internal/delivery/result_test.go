package delivery

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"120", 2 * time.Minute},
		{" 30 ", 30 * time.Second},
		{"86400", 24 * time.Hour},
		{"86401", 24 * time.Hour},
		{"99999999999999999999999", 24 * time.Hour},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"Wed, 01 May 2024 12:01:30 GMT", 90 * time.Second},
		{"Wednesday, 01-May-24 12:01:30 GMT", 90 * time.Second}, // RFC 850
		{"Wed May  1 12:01:30 2024", 90 * time.Second},          // asctime
		{"Wed, 01 May 2024 11:59:00 GMT", 0},
		{"Thu, 01 May 2025 12:00:00 GMT", 24 * time.Hour},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestExcerpt(t *testing.T) {
	tests := []struct {
		body string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 3, "hel"},
		{"hello", 0, ""},
		{"", 5, ""},
		{"héllo", 2, "h"},         // é cut in half is dropped
		{"héllo", 3, "hé"},        // whole
		{"a\xffb", 3, "a"},        // U+FFFD would not fit in 3 bytes after 'a'
		{"a\xffb", 5, "a\uFFFDb"}, // it fits in 5
		{"\xff\xfe", 6, "\uFFFD\uFFFD"},
		{"日本語", 7, "日本"},
	}
	for _, tt := range tests {
		got := Result{Body: []byte(tt.body)}.Excerpt(tt.n)
		if got != tt.want {
			t.Errorf("Excerpt(%q, %d) = %q, want %q", tt.body, tt.n, got, tt.want)
		}
		if len(got) > tt.n {
			t.Errorf("Excerpt(%q, %d) is %d bytes", tt.body, tt.n, len(got))
		}
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{Delivered: "delivered", Retryable: "retryable", Gone: "gone", Refused: "refused", 0: "Class(0)"} {
		if got := c.String(); got != want {
			t.Errorf("%d: %q, want %q", c, got, want)
		}
	}
	if (Result{}).Class == Delivered {
		t.Error("the zero Result reads as delivered")
	}
}

func TestStatusErrorMessages(t *testing.T) {
	tests := []struct {
		err  *StatusError
		want string
	}{
		{&StatusError{Status: 500}, "HTTP 500"},
		{&StatusError{Status: 502, Body: []byte("bad\n\tgateway  ")}, "HTTP 502: bad gateway"},
		{&StatusError{Status: 301, Location: "https://new.example.com/hook"}, "HTTP 301: redirect not followed: https://new.example.com/hook"},
		{&StatusError{Status: 302}, "HTTP 302: redirect not followed (no Location)"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestNetworkErrorUnwraps(t *testing.T) {
	err := error(&NetworkError{Stage: StageRead, Err: io.ErrUnexpectedEOF})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Error("errors.Is does not see the cause")
	}
	if err.Error() != "read: unexpected EOF" {
		t.Errorf("message %q", err)
	}
}

// The url.Error http.Client returns names the URL, which may carry a token
// in its query; the classified error must not.
func TestErrorsDoNotLeakTheURL(t *testing.T) {
	srv := newHangingServer(t)
	req := requestTo(t, srv.URL+"/hook?token=s3cr3t")
	req.Timeout = 100 * time.Millisecond
	res := newTestClient(t).Do(context.Background(), req)
	if res.Err == nil {
		t.Fatal("no error")
	}
	if msg := res.Err.Error(); strings.Contains(msg, "s3cr3t") {
		t.Errorf("error %q holds the URL's token", msg)
	}
}
