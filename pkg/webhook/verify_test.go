package webhook_test

import (
	"crypto/ed25519"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/herald-dev/herald/pkg/webhook"
)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func mustVerifier(t testing.TB, keys ...string) *webhook.Verifier {
	t.Helper()
	v, err := webhook.NewVerifier(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func specHeader() http.Header {
	h := http.Header{}
	h.Set(webhook.HeaderID, specMsgID)
	h.Set(webhook.HeaderTimestamp, strconv.Itoa(specUnix))
	h.Set(webhook.HeaderSignature, specSignature)
	return h
}

func TestVerifySpecVector(t *testing.T) {
	v := mustVerifier(t, specSecret).With(webhook.WithClock(fixedClock(specTime)))
	if err := v.Verify(specHeader(), []byte(specBody)); err != nil {
		t.Fatalf("spec example rejected: %v", err)
	}
	// Standard Webhooks libraries accept the secret without its prefix.
	v = mustVerifier(t, strings.TrimPrefix(specSecret, "whsec_")).With(webhook.WithClock(fixedClock(specTime)))
	if err := v.Verify(specHeader(), []byte(specBody)); err != nil {
		t.Fatalf("spec example rejected with an unprefixed secret: %v", err)
	}
}

func TestVerify(t *testing.T) {
	key := mustSecret(t, specSecret)
	signAt := func(unix int64) string {
		return webhook.Sign(key, specMsgID, time.Unix(unix, 0), []byte(specBody))
	}
	junk := "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
	tests := []struct {
		name   string
		edit   func(h http.Header)
		body   string // replaces specBody when not empty
		want   error
		detail string // substring of the error message
	}{
		{name: "valid", edit: func(http.Header) {}},
		{name: "tampered body", body: `{"test": 2432232315}`, want: webhook.ErrNoMatchingSignature},
		{name: "body with trailing newline", body: specBody + "\n", want: webhook.ErrNoMatchingSignature},
		{name: "tampered id", edit: func(h http.Header) { h.Set("webhook-id", specMsgID+"x") }, want: webhook.ErrNoMatchingSignature},
		{name: "timestamp moved by one second", edit: func(h http.Header) { h.Set("webhook-timestamp", "1614265331") }, want: webhook.ErrNoMatchingSignature},
		{name: "signature of another key", edit: func(h http.Header) { h.Set("webhook-signature", junk) }, want: webhook.ErrNoMatchingSignature},
		{name: "missing id", edit: func(h http.Header) { h.Del("webhook-id") }, want: webhook.ErrMissingHeaders, detail: "webhook-id"},
		{name: "missing timestamp", edit: func(h http.Header) { h.Del("webhook-timestamp") }, want: webhook.ErrMissingHeaders, detail: "webhook-timestamp"},
		{name: "missing signature", edit: func(h http.Header) { h.Del("webhook-signature") }, want: webhook.ErrMissingHeaders, detail: "webhook-signature"},
		{name: "blank signature", edit: func(h http.Header) { h.Set("webhook-signature", "  ") }, want: webhook.ErrMissingHeaders},
		{name: "no headers at all", edit: func(h http.Header) { clear(h) }, want: webhook.ErrMissingHeaders, detail: "webhook-id, webhook-timestamp, webhook-signature"},
		{name: "lower-case header names", edit: func(h http.Header) {
			for k, v := range h {
				delete(h, k)
				h[strings.ToLower(k)] = v
			}
		}},
		// Rotation: one signature per secret, any of them may match.
		{name: "valid among others", edit: func(h http.Header) {
			h.Set("webhook-signature", junk+" v2,"+specSignature[3:]+" "+specSignature+" "+junk)
		}},
		{name: "tabs and repeated spaces", edit: func(h http.Header) { h.Set("webhook-signature", junk+" \t  "+specSignature+"  ") }},
		{name: "signatures split over two header lines", edit: func(h http.Header) {
			h.Set("webhook-signature", junk)
			h.Add("webhook-signature", specSignature)
		}},
		{name: "unknown version only", edit: func(h http.Header) { h.Set("webhook-signature", "v2,"+specSignature[3:]) }, want: webhook.ErrNoMatchingSignature},
		{name: "hmac labelled v1a", edit: func(h http.Header) { h.Set("webhook-signature", "v1a,"+specSignature[3:]) }, want: webhook.ErrNoMatchingSignature},
		{name: "no comma", edit: func(h http.Header) { h.Set("webhook-signature", "v1"+specSignature[3:]) }, want: webhook.ErrNoMatchingSignature},
		{name: "empty value", edit: func(h http.Header) { h.Set("webhook-signature", "v1, v1a,") }, want: webhook.ErrNoMatchingSignature},
		{name: "garbage base64", edit: func(h http.Header) { h.Set("webhook-signature", "v1,!!!! v1a,@@@@") }, want: webhook.ErrNoMatchingSignature},
		{name: "signature prefix only", edit: func(h http.Header) { h.Set("webhook-signature", specSignature[:20]) }, want: webhook.ErrNoMatchingSignature},
		{name: "32 signatures, valid last", edit: func(h http.Header) {
			h.Set("webhook-signature", strings.Repeat(junk+" ", 31)+specSignature)
		}},
		{name: "33 signatures", edit: func(h http.Header) {
			h.Set("webhook-signature", strings.Repeat(junk+" ", 32)+specSignature)
		}, want: webhook.ErrInvalidHeaders, detail: "more than 32"},
		{name: "timestamp not a number", edit: func(h http.Header) { h.Set("webhook-timestamp", "yesterday") }, want: webhook.ErrInvalidHeaders},
		{name: "timestamp with plus sign", edit: func(h http.Header) { h.Set("webhook-timestamp", "+1614265330") }, want: webhook.ErrInvalidHeaders},
		{name: "timestamp with leading zero", edit: func(h http.Header) { h.Set("webhook-timestamp", "01614265330") }, want: webhook.ErrInvalidHeaders},
		{name: "timestamp with space", edit: func(h http.Header) { h["Webhook-Timestamp"] = []string{"1614265330 "} }, want: webhook.ErrInvalidHeaders},
		{name: "timestamp in milliseconds is far ahead", edit: func(h http.Header) { h.Set("webhook-timestamp", "1614265330000") }, want: webhook.ErrTimestampTooNew},
		{name: "timestamp in exponent form", edit: func(h http.Header) { h.Set("webhook-timestamp", "1.6e9") }, want: webhook.ErrInvalidHeaders},
		{name: "negative timestamp", edit: func(h http.Header) { h.Set("webhook-timestamp", "-1") }, want: webhook.ErrInvalidHeaders},
		{name: "timestamp overflows int64", edit: func(h http.Header) { h.Set("webhook-timestamp", "99999999999999999999") }, want: webhook.ErrInvalidHeaders},
		{name: "huge timestamp header", edit: func(h http.Header) { h.Set("webhook-timestamp", strings.Repeat("9", 1<<20)) }, want: webhook.ErrInvalidHeaders},
		// Regression: time.Unix wraps around for huge seconds, which turned
		// a far-future timestamp into a far-past one.
		{name: "max int64 timestamp", edit: func(h http.Header) { h.Set("webhook-timestamp", "9223372036854775807") }, want: webhook.ErrTimestampTooNew},
		{name: "epoch", edit: func(h http.Header) { h.Set("webhook-timestamp", "0") }, want: webhook.ErrTimestampTooOld},
		// Tolerance, both ways, with signatures valid for the timestamp.
		{name: "exactly 5m old", edit: func(h http.Header) {
			h.Set("webhook-timestamp", strconv.Itoa(specUnix-300))
			h.Set("webhook-signature", signAt(specUnix-300))
		}},
		{name: "5m1s old", edit: func(h http.Header) {
			h.Set("webhook-timestamp", strconv.Itoa(specUnix-301))
			h.Set("webhook-signature", signAt(specUnix-301))
		}, want: webhook.ErrTimestampTooOld},
		{name: "exactly 5m ahead", edit: func(h http.Header) {
			h.Set("webhook-timestamp", strconv.Itoa(specUnix+300))
			h.Set("webhook-signature", signAt(specUnix+300))
		}},
		{name: "5m1s ahead", edit: func(h http.Header) {
			h.Set("webhook-timestamp", strconv.Itoa(specUnix+301))
			h.Set("webhook-signature", signAt(specUnix+301))
		}, want: webhook.ErrTimestampTooNew},
	}
	v := mustVerifier(t, specSecret).With(webhook.WithClock(fixedClock(specTime)))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := specHeader()
			if tt.edit != nil {
				tt.edit(h)
			}
			body := specBody
			if tt.body != "" {
				body = tt.body
			}
			err := v.Verify(h, []byte(body))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("error %q does not mention %q", err, tt.detail)
			}
		})
	}
}

func TestVerifyNilHeader(t *testing.T) {
	err := mustVerifier(t, specSecret).Verify(nil, nil)
	if !errors.Is(err, webhook.ErrMissingHeaders) {
		t.Errorf("Verify(nil, nil) = %v, want ErrMissingHeaders", err)
	}
}

// During a rotation herald signs with both secrets; a receiver that holds
// either of them, or both, accepts the request.
func TestVerifyRotation(t *testing.T) {
	oldSecret, newSecret := specSecret, "whsec_"+b64(32, 42)
	signer, err := webhook.NewSigner(newSecret, oldSecret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(specBody)
	h := http.Header{}
	signer.SetHeaders(h, specMsgID, specTime, body)
	if n := len(strings.Fields(h.Get(webhook.HeaderSignature))); n != 2 {
		t.Fatalf("%d signatures, want 2: %q", n, h.Get(webhook.HeaderSignature))
	}

	for _, tt := range []struct {
		name string
		keys []string
		want error
	}{
		{name: "old secret only", keys: []string{oldSecret}},
		{name: "new secret only", keys: []string{newSecret}},
		{name: "both", keys: []string{newSecret, oldSecret}},
		{name: "unrelated plus new", keys: []string{"whsec_" + b64(32, 9), newSecret}},
		{name: "unrelated", keys: []string{"whsec_" + b64(32, 9)}, want: webhook.ErrNoMatchingSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := mustVerifier(t, tt.keys...).With(webhook.WithClock(fixedClock(specTime)))
			if err := v.Verify(h, body); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}

	// The new secret alone, after the grace period, against a receiver that
	// still holds both.
	h.Set(webhook.HeaderSignature, webhook.Sign(mustSecret(t, newSecret), specMsgID, specTime, body))
	v := mustVerifier(t, oldSecret, newSecret).With(webhook.WithClock(fixedClock(specTime)))
	if err := v.Verify(h, body); err != nil {
		t.Errorf("new signature alone rejected: %v", err)
	}
}

func TestVerifyEd25519(t *testing.T) {
	sk, pk, err := webhook.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	_, otherPK, err := webhook.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := webhook.NewSigner(sk)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(specBody)
	now := time.Now()
	h := http.Header{}
	signer.SetHeaders(h, specMsgID, now, body)
	if sig := h.Get(webhook.HeaderSignature); !strings.HasPrefix(sig, "v1a,") {
		t.Fatalf("signature %q is not v1a", sig)
	}

	tests := []struct {
		name string
		keys []string
		body string
		want error
	}{
		{name: "public key", keys: []string{pk}},
		{name: "signing key stands for its public key", keys: []string{sk}},
		{name: "secret and public key", keys: []string{specSecret, pk}},
		{name: "tampered body", keys: []string{pk}, body: specBody + " ", want: webhook.ErrNoMatchingSignature},
		{name: "another public key", keys: []string{otherPK}, want: webhook.ErrNoMatchingSignature},
		{name: "secret only", keys: []string{specSecret}, want: webhook.ErrNoMatchingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := body
			if tt.body != "" {
				b = []byte(tt.body)
			}
			err := mustVerifier(t, tt.keys...).Verify(h, b)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyEd25519SpecVector(t *testing.T) {
	k, err := webhook.ParseSigningKey(specSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	pk := "whpk_" + b64Bytes(k.Public().(ed25519.PublicKey))
	h := specHeader()
	h.Set(webhook.HeaderSignature, specSignatureA)
	v := mustVerifier(t, pk).With(webhook.WithClock(fixedClock(specTime)))
	if err := v.Verify(h, []byte(specBody)); err != nil {
		t.Fatalf("reference v1a signature rejected: %v", err)
	}
}

func TestNewVerifierErrors(t *testing.T) {
	tests := []struct {
		name    string
		keys    []string
		wantErr string
	}{
		{name: "no keys", wantErr: "no keys"},
		{name: "empty key", keys: []string{""}, wantErr: "key 0"},
		{name: "bad second key", keys: []string{specSecret, "whpk_" + b64(31, 1)}, wantErr: "key 1"},
		{name: "bad signing key", keys: []string{"whsk_!"}, wantErr: "whsk_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := webhook.NewVerifier(tt.keys...)
			if !errors.Is(err, webhook.ErrInvalidKey) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrInvalidKey containing %q", err, tt.wantErr)
			}
			if v != nil {
				t.Error("returned a Verifier along with an error")
			}
		})
	}
}

func TestVerifierOptions(t *testing.T) {
	sentAt := specTime.Add(-30 * time.Minute)
	h := specHeader()
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(sentAt.Unix(), 10))
	h.Set(webhook.HeaderSignature, webhook.Sign(mustSecret(t, specSecret), specMsgID, sentAt, []byte(specBody)))

	base := mustVerifier(t, specSecret).With(webhook.WithClock(fixedClock(specTime)))
	if err := base.Verify(h, []byte(specBody)); !errors.Is(err, webhook.ErrTimestampTooOld) {
		t.Fatalf("30m old with default tolerance: %v, want ErrTimestampTooOld", err)
	}
	wide := base.With(webhook.WithTolerance(time.Hour))
	if err := wide.Verify(h, []byte(specBody)); err != nil {
		t.Errorf("30m old with 1h tolerance: %v", err)
	}
	if err := base.Verify(h, []byte(specBody)); !errors.Is(err, webhook.ErrTimestampTooOld) {
		t.Errorf("With changed the original Verifier: %v", err)
	}
	for _, d := range []time.Duration{0, -time.Hour} {
		v := wide.With(webhook.WithTolerance(d))
		if err := v.Verify(h, []byte(specBody)); err != nil {
			t.Errorf("WithTolerance(%v) changed the tolerance: %v", d, err)
		}
	}
	if err := base.With(webhook.WithClock(nil)).Verify(h, []byte(specBody)); !errors.Is(err, webhook.ErrTimestampTooOld) {
		t.Errorf("WithClock(nil): %v, want the clock kept", err)
	}

	// Without WithClock the verifier uses the real time.
	real := mustVerifier(t, specSecret)
	if err := real.Verify(specHeader(), []byte(specBody)); !errors.Is(err, webhook.ErrTimestampTooOld) {
		t.Errorf("2021 timestamp against the real clock: %v, want ErrTimestampTooOld", err)
	}
}

// failingReader fails the test if anything reads it.
type failingReader struct{ t *testing.T }

func (r failingReader) Read([]byte) (int, error) {
	r.t.Error("body read although the headers were missing")
	return 0, io.EOF
}

func TestVerifyRequest(t *testing.T) {
	v := mustVerifier(t, specSecret)
	signed := func(body string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body))
		s, err := webhook.NewSigner(specSecret)
		if err != nil {
			t.Fatal(err)
		}
		s.SetHeaders(r.Header, specMsgID, time.Now(), []byte(body))
		return r
	}

	t.Run("valid", func(t *testing.T) {
		got, err := v.VerifyRequest(signed(specBody), 1024)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != specBody {
			t.Errorf("body = %q, want %q", got, specBody)
		}
	})
	t.Run("body exactly at the limit", func(t *testing.T) {
		if _, err := v.VerifyRequest(signed(specBody), int64(len(specBody))); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("body one byte over the limit", func(t *testing.T) {
		got, err := v.VerifyRequest(signed(specBody), int64(len(specBody)-1))
		if !errors.Is(err, webhook.ErrBodyTooLarge) || got != nil {
			t.Fatalf("VerifyRequest = %q, %v; want nil, ErrBodyTooLarge", got, err)
		}
	})
	t.Run("default limit", func(t *testing.T) {
		big := strings.Repeat("x", webhook.DefaultMaxBody+1)
		if _, err := v.VerifyRequest(signed(big), 0); !errors.Is(err, webhook.ErrBodyTooLarge) {
			t.Fatalf("VerifyRequest over DefaultMaxBody = %v, want ErrBodyTooLarge", err)
		}
		if _, err := v.VerifyRequest(signed(big[1:]), -1); err != nil {
			t.Fatalf("VerifyRequest at DefaultMaxBody = %v", err)
		}
	})
	t.Run("tampered body returns no body", func(t *testing.T) {
		r := signed(specBody)
		r.Body = io.NopCloser(strings.NewReader(specBody + "!"))
		got, err := v.VerifyRequest(r, 1024)
		if !errors.Is(err, webhook.ErrNoMatchingSignature) || got != nil {
			t.Fatalf("VerifyRequest = %q, %v; want nil, ErrNoMatchingSignature", got, err)
		}
	})
	t.Run("missing headers, body not read", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/hook", failingReader{t})
		if _, err := v.VerifyRequest(r, 1024); !errors.Is(err, webhook.ErrMissingHeaders) {
			t.Fatalf("VerifyRequest = %v, want ErrMissingHeaders", err)
		}
	})
	t.Run("read error", func(t *testing.T) {
		r := signed(specBody)
		r.Body = io.NopCloser(iotest.ErrReader(io.ErrUnexpectedEOF))
		if _, err := v.VerifyRequest(r, 1024); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("VerifyRequest = %v, want the read error", err)
		}
	})
	t.Run("nil body is empty", func(t *testing.T) {
		r := signed("")
		r.Body = nil
		got, err := v.VerifyRequest(r, 1024)
		if err != nil || len(got) != 0 {
			t.Fatalf("VerifyRequest = %q, %v; want empty body, nil", got, err)
		}
	})
}
