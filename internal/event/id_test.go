package event

import (
	"crypto/sha256"
	"math/rand/v2"
	"strings"
	"testing"
)

// deliveryIDReference is DeliveryID as the contract states it, written the
// plain way: every DeliveryID must equal it.
func deliveryIDReference(eventID, subscriptionID string) string {
	h := sha256.New()
	h.Write([]byte(eventID))
	h.Write([]byte{'\n'})
	h.Write([]byte(subscriptionID))
	var sum [sha256.Size]byte
	enc := idEncoding.EncodeToString(h.Sum(sum[:0]))
	return "msg_" + strings.ToLower(enc[:26])
}

// TestDeliveryIDMatchesReference pins the id, a contract with receivers, to
// its definition over random ids of every length around the stack buffer's.
func TestDeliveryIDMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randomString := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	}
	check := func(eventID, subID string) {
		t.Helper()
		if got, want := DeliveryID(eventID, subID), deliveryIDReference(eventID, subID); got != want {
			t.Fatalf("DeliveryID(%q, %q) = %q, want %q", eventID, subID, got, want)
		}
	}
	for n := 0; n <= idStackInput+2; n++ {
		for _, e := range []int{0, n / 2, n} {
			check(randomString(e), randomString(n-e))
		}
	}
	for range 2000 {
		check(randomString(rng.IntN(600)), randomString(rng.IntN(80)))
	}
	check("orders/0/42", "sub_1")
	check("", "")
	check("\n", "\n")
}
