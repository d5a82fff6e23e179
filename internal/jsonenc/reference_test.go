package jsonenc

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// appendStringByByte is AppendString as it was before its word-at-a-time
// scan: the per-byte reference the tests hold AppendString to and the
// benchmarks measure it against.
func appendStringByByte(b []byte, s string, escapeHTML bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!escapeHTML || (c != '<' && c != '>' && c != '&')) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendString scans a word at a time; every byte it writes must be the
// one the per-byte encoder wrote, wherever in the word the byte to escape
// falls and whatever follows it.
func TestAppendStringMatchesByteByByte(t *testing.T) {
	// Bytes the escaper treats specially, their neighbours, and the pieces
	// of multi-byte runes, valid and not.
	alphabet := []string{
		"a", "Z", "0", " ", "/", "=", "!", "#", "%", "'", "[", "]", "{", "}", "~", "\x7f",
		`"`, `\`, "<", ">", "&", "\x00", "\x01", "\b", "\t", "\n", "\f", "\r", "\x1b", "\x1f", "\x20", "\x21", "\x23", "\x25", "\x27",
		"\x3b", "\x3d", "\x3f", "\x5b", "\x5d",
		"é", "日", "€", "😀", "\u2027", "\u2028", "\u2029", "\u202a", "\ufffd", "\u00a0", "\u0080",
		"\x80", "\xbf", "\xc0", "\xc1", "\xc3", "\xe2", "\xe2\x80", "\xe2\x80\xa8"[:2], "\xed\xa0\x80", "\xf0\x9f", "\xf4\x90\x80\x80", "\xf5", "\xfe", "\xff",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	for n := range 200_000 {
		sb.Reset()
		for range rng.IntN(3 + n%40) {
			if rng.IntN(4) == 0 {
				sb.WriteString(alphabet[rng.IntN(len(alphabet))])
			} else {
				sb.WriteString(alphabet[rng.IntN(3)])
			}
		}
		s := sb.String()
		for _, html := range []bool{true, false} {
			prefix := []byte("prefix")
			got := AppendString(bytes.Clone(prefix), s, html)
			want := appendStringByByte(bytes.Clone(prefix), s, html)
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendString(%q, html=%v)\n got %s\nwant %s", s, html, got, want)
			}
		}
	}
}

// Every byte value, alone and at each position of a word, with safe bytes
// around it: the word scan must stop at it exactly when the per-byte
// encoder would escape or validate it.
func TestAppendStringEveryBytePosition(t *testing.T) {
	for c := range 256 {
		for pos := range 17 {
			for _, fill := range []byte{'a', ' ', '~'} {
				in := bytes.Repeat([]byte{fill}, 17)
				in[pos] = byte(c)
				for _, s := range []string{string(in), string(in[:pos+1]), string(in[pos:])} {
					for _, html := range []bool{true, false} {
						if got, want := AppendString(nil, s, html), appendStringByByte(nil, s, html); !bytes.Equal(got, want) {
							t.Fatalf("AppendString(%q, html=%v)\n got %s\nwant %s", s, html, got, want)
						}
					}
				}
			}
		}
	}
}

func FuzzAppendStringMatchesByteByByte(f *testing.F) {
	for _, in := range benchStrings {
		f.Add(in.s, true)
	}
	for _, s := range []string{"", "plain", "<&>", "\b\f\n\r\t\x00\x1f\x7f", "\xff\xfe", "sep\u2028\u2029", `"\`, "é日本", "01234567\"89abcdef\xe2\x80\xa8"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, html bool) {
		if got, want := AppendString(nil, s, html), appendStringByByte(nil, s, html); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q, html=%v)\n got %s\nwant %s", s, html, got, want)
		}
	})
}
