package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// spec is schemas/openapi.yaml as JSON values, with a JSON Schema
// 2020-12 compiler that resolves references into it: OpenAPI 3.1 schemas
// are JSON Schema 2020-12.
type spec struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
}

const specURL = "file:///openapi.json"

var loadSpec = sync.OnceValues(func() (*spec, error) {
	raw, err := os.ReadFile("../../schemas/openapi.yaml")
	if err != nil {
		return nil, err
	}
	var y any
	if err := yaml.Unmarshal(raw, &y); err != nil {
		return nil, err
	}
	// Through JSON, so every value has the types a JSON decoder gives.
	j, err := json.Marshal(y)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(specURL, doc); err != nil {
		return nil, err
	}
	return &spec{doc: doc.(map[string]any), compiler: c}, nil
})

func mustSpec(t *testing.T) *spec {
	t.Helper()
	s, err := loadSpec()
	if err != nil {
		t.Fatalf("schemas/openapi.yaml: %v", err)
	}
	return s
}

// pointer escapes one JSON pointer token.
func pointer(tokens ...string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return sb.String()
}

// resolve follows a local $ref of an object, returning it and its pointer.
func (s *spec) resolve(v any, ptr string) (map[string]any, string) {
	m, _ := v.(map[string]any)
	if ref, ok := m["$ref"].(string); ok && strings.HasPrefix(ref, "#/") {
		ptr = ref[1:]
		var cur any = s.doc
		for _, tok := range strings.Split(ref[2:], "/") {
			tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
			cur = cur.(map[string]any)[tok]
		}
		m, _ = cur.(map[string]any)
	}
	return m, ptr
}

func (s *spec) schema(t *testing.T, ptr string) *jsonschema.Schema {
	t.Helper()
	sch, err := s.compiler.Compile(specURL + "#" + ptr)
	if err != nil {
		t.Fatalf("compiling %s: %v", ptr, err)
	}
	return sch
}

// responseSchema is the JSON schema of a reply to method path with status.
func (s *spec) responseSchema(t *testing.T, method, path string, status int) *jsonschema.Schema {
	t.Helper()
	ptr := pointer("paths", path, strings.ToLower(method), "responses", fmt.Sprint(status))
	op, _ := s.doc["paths"].(map[string]any)[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
	if op == nil {
		t.Fatalf("%s %s is not in the spec", method, path)
	}
	resp, ptr := s.resolve(op["responses"].(map[string]any)[fmt.Sprint(status)], ptr)
	if resp == nil {
		t.Fatalf("%s %s: status %d is not in the spec", method, path, status)
	}
	content, _ := resp["content"].(map[string]any)
	if content["application/json"] == nil {
		t.Fatalf("%s %s %d has no JSON content in the spec", method, path, status)
	}
	return s.schema(t, ptr+pointer("content", "application/json", "schema"))
}

// checkReply validates a reply body against the spec's schema for the route
// and status: the spec describes what the server really answers.
func checkReply(t *testing.T, method, path string, r reply) {
	t.Helper()
	s := mustSpec(t)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("%s %s: reply is not JSON: %s", method, path, r.body)
	}
	if err := s.responseSchema(t, method, path, r.status).Validate(v); err != nil {
		t.Errorf("%s %s %d does not match the spec: %v\nbody %s", method, path, r.status, err, r.body)
	}
}

// TestOpenAPIExamplesValidate: every example in the spec, of a request or
// a response, validates against the schema next to it, and every JSON
// request body and success reply has one.
func TestOpenAPIExamplesValidate(t *testing.T) {
	s := mustSpec(t)
	checked := 0
	check := func(where, ptr string, media map[string]any, want bool) {
		t.Helper()
		examples := map[string]any{}
		if ex, ok := media["example"]; ok {
			examples["example"] = ex
		}
		if exs, ok := media["examples"].(map[string]any); ok {
			for name, ex := range exs {
				examples[name] = ex.(map[string]any)["value"]
			}
		}
		if want && len(examples) == 0 {
			t.Errorf("%s has no example", where)
		}
		if len(examples) == 0 {
			return
		}
		sch := s.schema(t, ptr+"/schema")
		for name, ex := range examples {
			checked++
			if err := sch.Validate(ex); err != nil {
				t.Errorf("%s example %q does not validate: %v", where, name, err)
			}
		}
	}
	paths := s.doc["paths"].(map[string]any)
	for _, path := range slices.Sorted(maps.Keys(paths)) {
		item := paths[path].(map[string]any)
		for method, v := range item {
			op, ok := v.(map[string]any)
			if !ok || method == "parameters" {
				continue
			}
			base := pointer("paths", path, method)
			where := strings.ToUpper(method) + " " + path
			if rb, ptr := s.resolve(op["requestBody"], base+"/requestBody"); rb != nil {
				content, _ := rb["content"].(map[string]any)
				if m, ok := content["application/json"].(map[string]any); ok {
					check(where+" request", ptr+pointer("content", "application/json"), m, rb["required"] == true)
				}
			}
			for status, rv := range op["responses"].(map[string]any) {
				resp, ptr := s.resolve(rv, base+pointer("responses", status))
				content, _ := resp["content"].(map[string]any)
				if m, ok := content["application/json"].(map[string]any); ok {
					check(where+" "+status, ptr+pointer("content", "application/json"), m, strings.HasPrefix(status, "2"))
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d examples checked", checked)
	}
}

// TestSpecRejectsWhatTheServerRejects spot-checks that the schemas are
// strict where the server is: a bad example must fail.
func TestSpecRejectsWhatTheServerRejects(t *testing.T) {
	s := mustSpec(t)
	for _, tc := range []struct {
		schema string
		value  string
	}{
		{"SubscriptionCreate", `{"url": "https://e.com", "colour": "blue"}`},
		{"SubscriptionCreate", `{"url": "https://e.com", "signing": "rsa"}`},
		{"SubscriptionCreate", `{"topics": ["orders"]}`},
		{"EventIn", `{"type": "a"}`},
		{"EventIn", `{"type": "a", "data": 1, "extra": true}`},
		{"ReplayRequest", `{}`},
		{"Attempt", `{"delivery_id": "m"}`},
	} {
		v, _ := jsonschema.UnmarshalJSON(strings.NewReader(tc.value))
		if err := s.schema(t, pointer("components", "schemas", tc.schema)).Validate(v); err == nil {
			t.Errorf("%s accepts %s", tc.schema, tc.value)
		}
	}
}
