package delivery

import (
	"bytes"
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
		if got, want := plain(b), plainByByte(b); got != want {
			t.Fatalf("plain(%q) = %v, want %v", b, got, want)
		}
	})
}

// plainByByte is plain as the definition has it, one byte at a time.
func plainByByte(v []byte) bool {
	open := 0
	for _, c := range v {
		switch {
		case c < 0x20:
			return false
		case c == '[' || c == '{':
			open++
		}
	}
	return open <= maxFastBrackets
}

// TestPlain holds plain to the byte-at-a-time definition: every control
// character and its neighbours at every position of a word and its tail,
// and bracket counts around the limit.
func TestPlain(t *testing.T) {
	var cases [][]byte
	for _, c := range []byte{0x00, 0x01, 0x09, 0x0a, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0x9f, 0xa0, 0xff} {
		for n := 1; n <= 19; n++ {
			for at := range n {
				v := bytes.Repeat([]byte{'a'}, n)
				v[at] = c
				cases = append(cases, v)
				w := bytes.Repeat([]byte{0xff}, n)
				w[at] = c
				cases = append(cases, w)
			}
		}
	}
	for _, n := range []int{maxFastBrackets - 1, maxFastBrackets, maxFastBrackets + 1} {
		cases = append(cases,
			bytes.Repeat([]byte{'['}, n),
			append(bytes.Repeat([]byte{'{'}, n), bytes.Repeat([]byte{' '}, 20)...),
			append(bytes.Repeat([]byte("[{"), n/2), '['))
	}
	for _, v := range cases {
		if got, want := plain(v), plainByByte(v); got != want {
			t.Errorf("plain(%q…, %d bytes) = %v, want %v", v[:min(len(v), 24)], len(v), got, want)
		}
	}
}

// TestDeepInvalidJSONSkipsFastjson pins that a value nested too deep for
// fastjson to reject cheaply goes to json.Valid. fastjson builds an error
// at every level of nesting (thousands of allocations here), and at 10,000
// levels spent 10 s on it: a producer's malformed event must not cost that.
func TestDeepInvalidJSONSkipsFastjson(t *testing.T) {
	for _, open := range []string{"[", `{"a":`} {
		v := append(bytes.Repeat([]byte(open), 2000), 'x')
		var got bool
		allocs := testing.AllocsPerRun(3, func() { got = isJSON(v) })
		if got {
			t.Fatalf("isJSON(%q…) = true", v[:12])
		}
		if allocs > 50 {
			t.Errorf("isJSON(%q… nested 2,000 deep, invalid) made %.0f allocations: fastjson judged it", v[:12], allocs)
		}
	}
}
