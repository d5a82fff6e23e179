// Package webhook signs and verifies the HTTP requests herald delivers.
//
// herald follows Standard Webhooks (https://www.standardwebhooks.com). Every
// request carries three headers:
//
//	webhook-id:        msg_…, the same on every attempt; dedupe on it
//	webhook-timestamp: unix seconds of this attempt
//	webhook-signature: v1,<base64 sig> [v1,<sig> | v1a,<sig> …]
//
// Each signature covers "<id>.<timestamp>.<body>", so the id and the
// timestamp cannot be swapped onto another body, and an old request cannot be
// replayed once the timestamp leaves the tolerance window (±5 minutes by
// default). While a secret is being rotated herald signs with every unexpired
// secret, and the header holds one signature per secret, separated by spaces;
// a receiver accepts the request if any of them matches any key it holds.
//
// Keys are strings with a prefix that says what they are:
//
//	whsec_<base64 of 24–64 random bytes>  shared secret, HMAC-SHA256, "v1" signatures
//	whsk_<base64 of a 32-byte seed>       ed25519 signing key (kept by herald)
//	whpk_<base64 of a 32-byte public key> ed25519 public key, "v1a" signatures
//
// A receiver builds one [Verifier] at start-up and calls
// [Verifier.VerifyRequest] in its handler. herald signs with a [Signer].
//
// Subscriptions created before Standard Webhooks may use the legacy "hex"
// scheme instead: an X-Signature header holding the hex HMAC-SHA256 of the
// body alone, checked with [VerifyHex]. It signs neither the id nor the
// timestamp, so it cannot stop replays; prefer the standard scheme.
//
// The package imports only the standard library.
package webhook
