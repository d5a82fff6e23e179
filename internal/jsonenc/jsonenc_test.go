package jsonenc

import (
	"bytes"
	"encoding/json"
	"testing"
)

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "<&>", "\b\f\n\r\t\x00\x1f\x7f", "\xff\xfe", "sep\u2028\u2029", `"\`, "é日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var html, plain bytes.Buffer
		enc := json.NewEncoder(&html)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		enc = json.NewEncoder(&plain)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got, want := AppendString(nil, s, true), bytes.TrimSuffix(html.Bytes(), []byte("\n")); !bytes.Equal(got, want) {
			t.Fatalf("html: got %s want %s", got, want)
		}
		if got, want := AppendString(nil, s, false), bytes.TrimSuffix(plain.Bytes(), []byte("\n")); !bytes.Equal(got, want) {
			t.Fatalf("plain: got %s want %s", got, want)
		}
	})
}
