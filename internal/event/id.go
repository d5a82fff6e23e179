package event

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"
	"strings"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// DeliveryID is the deterministic id of one event's delivery to one
// subscription: "msg_" + base32(sha256(eventID "\n" subscriptionID))[:26],
// lower case. It is the same on every attempt, replay and instance, so it is
// both the webhook-id header and the dedupe key.
func DeliveryID(eventID, subscriptionID string) string {
	h := sha256.New()
	h.Write([]byte(eventID))
	h.Write([]byte{'\n'})
	h.Write([]byte(subscriptionID))
	var sum [sha256.Size]byte
	enc := idEncoding.EncodeToString(h.Sum(sum[:0]))
	return "msg_" + strings.ToLower(enc[:26])
}

// Position formats a record position as "topic/partition/offset".
func Position(topic string, partition int32, offset int64) string {
	return topic + "/" + strconv.FormatInt(int64(partition), 10) + "/" + strconv.FormatInt(offset, 10)
}
