// Package jsonenc appends JSON values to byte slices without reflection, as
// encoding/json would write them, for the few hot paths that build JSON by
// hand.
package jsonenc

import (
	"math"
	"math/bits"
	"strconv"
	"time"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaped as encoding/json does:
// control characters, U+2028 and U+2029 escaped, invalid UTF-8 replaced by
// U+FFFD, and, when escapeHTML is set, <, > and & escaped too.
func AppendString(b []byte, s string, escapeHTML bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Most of what herald writes is ids, names and ASCII bodies: skip
		// eight bytes at a time up to the first that may need escaping.
		if len(s)-i >= 8 {
			m := needsLook(load64(s[i:i+8]), escapeHTML)
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) / 8
		}
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

// load64 reads the first eight bytes of s, the first in the low byte,
// whatever the machine's byte order.
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// needsLook sets the high bit of each byte of w that AppendString must look
// at one by one: non-ASCII (validation, U+2028, U+2029), below 0x20, '"',
// '\\', and, with escapeHTML, '<', '>' and '&'. A borrow starts only at a
// marked byte and runs upward, so the lowest mark is exact.
func needsLook(w uint64, escapeHTML bool) uint64 {
	m := w | (w - 0x20*ones) | ((w ^ '"'*ones) - ones) | ((w ^ '\\'*ones) - ones)
	if escapeHTML {
		m |= ((w ^ '<'*ones) - ones) | ((w ^ '>'*ones) - ones) | ((w ^ '&'*ones) - ones)
	}
	return m & highs
}

// AppendTime appends t as encoding/json writes a time.Time: RFC 3339 with
// nanoseconds, quoted.
func AppendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// AppendFloat appends f as encoding/json writes a float64: no exponent between 1e-6
// and 1e21, a short one outside. NaN and infinities, which JSON cannot
// hold, become 0.
func AppendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
