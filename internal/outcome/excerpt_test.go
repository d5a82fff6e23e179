package outcome

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestExcerpt(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"short", `{"ok":true}`, `{"ok":true}`},
		{"empty", "", ""},
		{"cut at the limit", strings.Repeat("a", 2000), strings.Repeat("a", 1024)},
		{"rune split at the limit is dropped", strings.Repeat("a", 1023) + "é", strings.Repeat("a", 1023)},
		{"invalid bytes replaced", "ok\xff\xfe", "ok\uFFFD\uFFFD"},
		{"replacements never pass the limit", strings.Repeat("a\xff", 600), strings.Repeat("a\uFFFD", 256)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Excerpt([]byte(tc.in))
			if got != tc.want {
				t.Fatalf("Excerpt = %q (%d bytes), want %q (%d bytes)", got, len(got), tc.want, len(tc.want))
			}
			if len(got) > ResponseLimit || !utf8.ValidString(got) {
				t.Fatalf("Excerpt gave %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
			}
		})
	}
}
