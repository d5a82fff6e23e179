package event

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

const (
	deliveryIDPrefix = "msg_"
	deliveryIDChars  = 26
	// idHashBytes is the hash prefix that encodes, in whole 5-byte groups,
	// to at least deliveryIDChars characters.
	idHashBytes = 20
	// idStackInput is the longest "eventID\nsubscriptionID" hashed from a
	// stack buffer; longer pairs cost one allocation more.
	idStackInput = 256
)

// DeliveryID is the deterministic id of one event's delivery to one
// subscription: "msg_" + base32(sha256(eventID "\n" subscriptionID))[:26],
// lower case. It is the same on every attempt, replay and instance, so it is
// both the webhook-id header and the dedupe key.
//
// It runs once per delivery, so it allocates only its result.
func DeliveryID(eventID, subscriptionID string) string {
	var sum [sha256.Size]byte
	if n := len(eventID) + 1 + len(subscriptionID); n <= idStackInput {
		var in [idStackInput]byte
		copy(in[copy(in[:], eventID)+1:], subscriptionID)
		in[len(eventID)] = '\n'
		sum = sha256.Sum256(in[:n])
	} else {
		sum = sha256.Sum256([]byte(eventID + "\n" + subscriptionID))
	}

	var out [len(deliveryIDPrefix) + idHashBytes/5*8]byte
	copy(out[:], deliveryIDPrefix)
	enc := out[len(deliveryIDPrefix):]
	idEncoding.Encode(enc, sum[:idHashBytes])
	for i, c := range enc[:deliveryIDChars] {
		if 'A' <= c && c <= 'Z' {
			enc[i] = c + 'a' - 'A'
		}
	}
	return string(out[:len(deliveryIDPrefix)+deliveryIDChars])
}

// Position formats a record position as "topic/partition/offset".
func Position(topic string, partition int32, offset int64) string {
	return topic + "/" + strconv.FormatInt(int64(partition), 10) + "/" + strconv.FormatInt(offset, 10)
}
