package delivery

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzIsJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":"\xff"}`, `[1,2]`, `"\u00zz"`, `1e5`, `-0`, `01`, `{"a":1,}`, "\"\x01\"", "\"\r\\b\"",
		"{\n  \"pretty\": [1, 2]\n}", `[[[[[]]]]]`, ` true `, `nul`, `"\ud800"`, `1.`, `.5`, "\"\x7f\"", `1E+2`,
		strings.Repeat("[", 400) + strings.Repeat("]", 400),
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		`{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`,
		`["[[[[", {"b":"{{{{"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := isJSON(b), json.Valid(b); got != want {
			t.Fatalf("isJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}
