package jsonenc

import (
	"strings"
	"testing"
)

// benchStrings are what outcome and attempt records hold: ids and names,
// a Go client error, and 1 KiB response excerpts.
var benchStrings = []struct{ name, s string }{
	{"id", "msg_2bUmGRJzB8VhNq7hX4yQ1Kx9ZtC"},
	{"type", "order.created"},
	{"error", `Post "https://hooks.example.com/billing/orders?tenant=42": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`},
	{"text-1KiB", repeatTo("Service temporarily unavailable. The upstream billing service did not answer in time; please retry later. ")},
	{"json-1KiB", repeatTo(`{"error":{"code":"rate_limited","message":"too many requests for tenant 42","retry_after":30}},`)},
	{"utf8-1KiB", repeatTo("Le service de facturation est momentanément indisponible; réessayez plus tard. 请稍后重试。")},
}

// repeatTo repeats unit up to 1 KiB, less a rune cut at the end.
func repeatTo(unit string) string {
	return strings.ToValidUTF8(strings.Repeat(unit, 1024/len(unit)+1)[:1024], "")
}

func BenchmarkAppendString(b *testing.B) {
	for _, impl := range []struct {
		name string
		fn   func([]byte, string, bool) []byte
	}{
		{"impl=bytes", appendStringByByte},
		{"impl=words", AppendString},
	} {
		for _, in := range benchStrings {
			b.Run(impl.name+"/in="+in.name, func(b *testing.B) {
				buf := make([]byte, 0, 8*len(in.s)+2)
				b.SetBytes(int64(len(in.s)))
				for b.Loop() {
					buf = impl.fn(buf[:0], in.s, true)
				}
			})
		}
	}
}
