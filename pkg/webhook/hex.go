package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// Headers of the legacy "hex" scheme, for receivers built before Standard
// Webhooks.
const (
	HeaderHexDeliveryID = "X-Webhook-Delivery-ID"
	HeaderHexTimestamp  = "X-Webhook-Timestamp"
	HeaderHexSignature  = "X-Signature"
)

// SignHex returns the hex HMAC-SHA256 of body, the X-Signature value. key
// is the same decoded secret [Sign] uses ([ParseSecret]).
func SignHex(key, body []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// VerifyHex checks header's X-Signature against body. The hex digest may be
// in either case and may carry GitHub's "sha256=" prefix.
//
// The hex scheme signs the body only: X-Webhook-Delivery-ID and
// X-Webhook-Timestamp are not covered, so VerifyHex does not check them and
// cannot detect a replayed request. Dedupe on the delivery id.
func VerifyHex(key []byte, header http.Header, body []byte) error {
	got := strings.TrimSpace(firstValue(header, HeaderHexSignature))
	if got == "" {
		return fmt.Errorf("%w: %s", ErrMissingHeaders, HeaderHexSignature)
	}
	got = strings.TrimPrefix(got, "sha256=")
	if len(got) != hex.EncodedLen(sha256.Size) {
		return fmt.Errorf("%w: %s is not a hex SHA-256 digest", ErrInvalidHeaders, HeaderHexSignature)
	}
	sig, err := hex.DecodeString(got)
	if err != nil {
		return fmt.Errorf("%w: %s is not a hex SHA-256 digest", ErrInvalidHeaders, HeaderHexSignature)
	}
	h := hmac.New(sha256.New, key)
	h.Write(body)
	if !hmac.Equal(h.Sum(nil), sig) {
		return ErrNoMatchingSignature
	}
	return nil
}
