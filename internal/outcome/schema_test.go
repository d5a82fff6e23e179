package outcome

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

type schemaProp struct {
	Type    json.RawMessage `json:"type"`
	Enum    []string        `json:"enum"`
	Pattern string          `json:"pattern"`
}

type schema struct {
	Schema               string                `json:"$schema"`
	AdditionalProperties *bool                 `json:"additionalProperties"`
	Required             []string              `json:"required"`
	Properties           map[string]schemaProp `json:"properties"`
}

func loadSchema(t *testing.T) schema {
	t.Helper()
	b, err := os.ReadFile("../../schemas/outcome.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s schema
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Schema != "https://json-schema.org/draft/2020-12/schema" {
		t.Fatalf("$schema = %q", s.Schema)
	}
	if s.AdditionalProperties == nil || *s.AdditionalProperties {
		t.Fatal("schema must set additionalProperties: false")
	}
	return s
}

func (p schemaProp) types() []string {
	var one string
	if json.Unmarshal(p.Type, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(p.Type, &many)
	return many
}

func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		if v == float64(int64(v)) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	}
	return "object"
}

func emit(t *testing.T, r *Record) map[string]any {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// check validates m against the parts of the schema herald's records use.
func check(t *testing.T, s schema, m map[string]any) {
	t.Helper()
	for k, v := range m {
		p, ok := s.Properties[k]
		if !ok {
			t.Errorf("emitted field %q is not in the schema", k)
			continue
		}
		got, types := jsonType(v), p.types()
		if !slices.Contains(types, got) && !(got == "integer" && slices.Contains(types, "number")) {
			t.Errorf("%s: %s value %v, schema type %v", k, got, v, types)
		}
		if p.Enum != nil && !slices.Contains(p.Enum, v.(string)) {
			t.Errorf("%s: %v not in enum %v", k, v, p.Enum)
		}
		if p.Pattern != "" && !regexp.MustCompile(p.Pattern).MatchString(v.(string)) {
			t.Errorf("%s: %q does not match %s", k, v, p.Pattern)
		}
	}
	for _, k := range s.Required {
		if _, ok := m[k]; !ok {
			t.Errorf("required field %q not emitted", k)
		}
	}
}

func TestSchemaMatchesRecord(t *testing.T) {
	s := loadSchema(t)

	// The schema declares exactly the Record's JSON fields and requires
	// exactly those that are never omitted.
	var fields, always []string
	rt := reflect.TypeFor[Record]()
	for i := range rt.NumField() {
		tag := rt.Field(i).Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fields = append(fields, name)
		if !strings.Contains(opts, "omitempty") {
			always = append(always, name)
		}
	}
	var props []string
	for k := range s.Properties {
		props = append(props, k)
	}
	slices.Sort(fields)
	slices.Sort(props)
	if !slices.Equal(fields, props) {
		t.Errorf("Record fields %v\nschema properties %v", fields, props)
	}
	slices.Sort(always)
	required := slices.Sorted(slices.Values(s.Required))
	if !slices.Equal(always, required) {
		t.Errorf("fields never omitted %v\nschema required %v", always, required)
	}

	states := []State{Delivered, Failed, Duplicate, Rejected, DeadLettered, Parked, Disabled, SubscriptionDeleted, Aborted, Alert}
	var enum []string
	for _, st := range states {
		enum = append(enum, string(st))
	}
	if !slices.Equal(enum, s.Properties["state"].Enum) {
		t.Errorf("states %v\nschema enum %v", enum, s.Properties["state"].Enum)
	}
}

func TestEmittedRecordsValidate(t *testing.T) {
	s := loadSchema(t)
	now := time.Now().UTC()

	full := sample(1) // every optional field set
	full.RecordedAt = now
	m := emit(t, full)
	for k := range s.Properties {
		if _, ok := m[k]; !ok {
			t.Errorf("a full record does not emit %q", k)
		}
	}
	check(t, s, m)

	minimal := &Record{DeliveryID: "msg_x", State: Duplicate, AttemptedAt: now, RecordedAt: now}
	check(t, s, emit(t, minimal))
}
