package webhook

import "errors"

// Verification errors. The errors returned by this package wrap one of them
// with detail, so test with errors.Is.
var (
	// ErrMissingHeaders: webhook-id, webhook-timestamp or webhook-signature
	// (X-Signature in the hex scheme) is absent or empty.
	ErrMissingHeaders = errors.New("webhook: missing required headers")
	// ErrInvalidHeaders: a header is present but malformed, e.g. a timestamp
	// that is not a plain decimal number, or too many signatures.
	ErrInvalidHeaders = errors.New("webhook: invalid headers")
	// ErrTimestampTooOld: webhook-timestamp is further in the past than the
	// tolerance; the request may be a replay, or the clocks disagree.
	ErrTimestampTooOld = errors.New("webhook: timestamp too old")
	// ErrTimestampTooNew: webhook-timestamp is further in the future than the
	// tolerance.
	ErrTimestampTooNew = errors.New("webhook: timestamp too new")
	// ErrNoMatchingSignature: no signature in the header matches any key.
	ErrNoMatchingSignature = errors.New("webhook: no matching signature")
	// ErrBodyTooLarge: the request body exceeds the limit given to
	// [Verifier.VerifyRequest].
	ErrBodyTooLarge = errors.New("webhook: body too large")
	// ErrInvalidKey: a whsec_, whsk_ or whpk_ string cannot be used as a key.
	ErrInvalidKey = errors.New("webhook: invalid key")
)
