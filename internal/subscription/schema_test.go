package subscription

import (
	"crypto/ed25519"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"testing"
)

// The JSON Schema lists exactly the fields the API writes and the fields
// Decode and DecodePatch accept.
func TestSchemaMatchesTheModel(t *testing.T) {
	raw, err := os.ReadFile("../../schemas/subscription.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	type object struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	var schema struct {
		object
		Defs map[string]object `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}

	full := &Subscription{
		Description: "d", Tenant: "t", ThinURLTemplate: "x", Headers: map[string]string{"a": "b"},
		RateLimitPerSecond: 1, MaxInFlight: 1, TimeoutMS: 1, MaxAttempts: 1, PublicKey: "whpk_",
		Secrets: []Secret{{Key: []byte("k")}}, SigningKey: make(ed25519.PrivateKey, ed25519.PrivateKeySize),
	}
	b, _ := json.Marshal(full)
	var api map[string]any
	json.Unmarshal(b, &api)
	if got, want := slices.Sorted(maps.Keys(schema.Defs["fields"].Properties)), slices.Sorted(maps.Keys(api)); !slices.Equal(got, want) {
		t.Errorf("schema fields %v\nAPI JSON fields %v", got, want)
	}
	for _, name := range schema.Required {
		if _, ok := api[name]; !ok {
			t.Errorf("schema requires %q, which the API can leave out", name)
		}
	}
	emptyJSON, _ := json.Marshal(&Subscription{})
	var empty map[string]any
	json.Unmarshal(emptyJSON, &empty)
	for name := range empty {
		if !slices.Contains(schema.Required, name) {
			t.Errorf("the API always writes %q but the schema does not require it", name)
		}
	}

	accepted := slices.Sorted(maps.Keys(subscriptionFields))
	if got := slices.Sorted(maps.Keys(schema.Defs["create"].Properties)); !slices.Equal(got, accepted) {
		t.Errorf("schema create fields %v\nDecode accepts %v", got, accepted)
	}
	if got := slices.Sorted(maps.Keys(schema.Defs["patch"].Properties)); !slices.Equal(got, slices.Sorted(maps.Keys(patchFields))) {
		t.Errorf("schema patch fields %v\nDecodePatch accepts %v", got, slices.Sorted(maps.Keys(patchFields)))
	}
	// A Patch marshals to the body DecodePatch reads (the CLI sends one).
	str, n, list, hdr := "x", 1, []string{}, map[string]string{}
	pl, sc, st := PayloadRaw, SchemeHex, StatusPaused
	pb, _ := json.Marshal(&Patch{&str, &str, &str, &list, &list, &pl, &str, &sc, &hdr, &n, &n, &n, &n, &st})
	var patch map[string]any
	json.Unmarshal(pb, &patch)
	if got := slices.Sorted(maps.Keys(patch)); !slices.Equal(got, slices.Sorted(maps.Keys(patchFields))) {
		t.Errorf("Patch marshals fields %v", got)
	}

	for name := range readOnly {
		if _, ok := schema.Defs["fields"].Properties[name]; !ok {
			t.Errorf("read-only %q missing from the schema", name)
		}
	}
}
