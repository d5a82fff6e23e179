package delivery

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"github.com/herald-dev/herald/internal/event"
	"github.com/herald-dev/herald/internal/jsonenc"
)

const (
	contentTypeJSON   = "application/json"
	contentTypeBinary = "application/octet-stream"

	// maxTimestampLen is the longest RFC 3339 UTC time with nanoseconds.
	maxTimestampLen = len("2006-01-02T15:04:05.999999999Z")
)

var errNoThinTemplate = errors.New("delivery: payload \"thin\" needs a thin_url_template")

// envelopeBody is {"type":…,"timestamp":…,"data":…}. The event's JSON is
// copied in as it is, without decoding, into a buffer sized up front: the
// body is the only allocation on this path.
func envelopeBody(ev *event.Event) []byte {
	data := bytes.TrimSpace(ev.Value)
	isJSON := isJSON(data)
	n := len(`{"type":,"timestamp":"","data":}`) + len(ev.Type) + 2 + maxTimestampLen
	switch {
	case len(data) == 0:
		n += len("null")
	case isJSON:
		n += len(data)
	default:
		n += base64.StdEncoding.EncodedLen(len(ev.Value)) + 2
	}

	b := make([]byte, 0, n)
	b = appendHead(b, ev)
	switch {
	case len(data) == 0:
		b = append(b, "null"...)
	case isJSON:
		b = append(b, data...)
	default:
		// Not JSON: the exact bytes, untrimmed, so binary values survive.
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, ev.Value)
		b = append(b, '"')
	}
	return append(b, '}')
}

// thinBody is the envelope with only a reference to the resource, for events
// too large to send: {"type","timestamp","data":{"id","url"}}.
func thinBody(ev *event.Event, template string) ([]byte, error) {
	if template == "" {
		return nil, errNoThinTemplate
	}
	id := resourceID(ev)
	link := strings.ReplaceAll(template, "{id}", url.PathEscape(id))

	b := make([]byte, 0, 64+len(ev.Type)+maxTimestampLen+len(id)+len(link))
	b = appendHead(b, ev)
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"url":`...)
	b = appendJSONString(b, link)
	return append(b, "}}"...), nil
}

// appendHead writes everything of an envelope up to the data value.
func appendHead(b []byte, ev *event.Event) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, ev.Type)
	b = append(b, `,"timestamp":"`...)
	b = ev.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `","data":`...)
}

// isJSON reports whether v is one JSON value, as json.Valid does. Values
// that cannot start one are ruled out first, since json.Valid allocates its
// error for them. fastjson's validator is several times faster, and agrees
// with json.Valid except that it lets control characters through inside
// strings and has no nesting limit: so it answers only for values it
// accepts that are plain (no control character, few brackets), and
// json.Valid for the rest (FuzzIsJSON holds the two to the same answers).
func isJSON(v []byte) bool {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 || strings.IndexByte(`{["-0123456789tfn`, v[0]) < 0 {
		return false
	}
	if plain(v) && fastjson.ValidateBytes(v) == nil {
		return true
	}
	return json.Valid(v)
}

// maxFastBrackets bounds the opening brackets of a value fastjson checks.
// Its validator wraps its error once for every level of nesting the error
// is found in, so a value that fails deep inside costs it time in the
// square of its depth: 10 s for 10 KB of '[' then a stray byte, which
// json.Valid rejects in 0.2 ms. A value with more brackets, which may
// nest that deep, goes to json.Valid, whose time is linear and whose own
// nesting limit (10,000) is then the one that applies.
const maxFastBrackets = 64

// plain reports whether v has no control character and at most
// maxFastBrackets opening brackets. It reads eight bytes at a time: a word
// holds a byte below 0x20 exactly when subtracting 0x20 from each of its
// bytes borrows into a top bit that the byte itself did not have. A value
// no longer than maxFastBrackets cannot hold too many brackets.
func plain(v []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(v); i += 8 {
		x := binary.LittleEndian.Uint64(v[i:])
		if (x-0x20*ones)&^x&highs != 0 {
			return false
		}
	}
	for ; i < len(v); i++ {
		if v[i] < 0x20 {
			return false
		}
	}
	return len(v) <= maxFastBrackets || bytes.Count(v, []byte{'{'})+bytes.Count(v, []byte{'['}) <= maxFastBrackets
}

// rawContentType is the content type a raw body goes out with: the event's
// own, else JSON when the value is JSON, else opaque bytes.
func rawContentType(ev *event.Event) string {
	switch {
	case ev.ContentType != "":
		return ev.ContentType
	case isJSON(ev.Value):
		return contentTypeJSON
	default:
		return contentTypeBinary
	}
}

// resourceID is the top-level "id" of a JSON object event (a string or a
// number), else the event id. Only that one field is decoded, however large
// the event. Like encoding/json, an "ID" key matches when "id" is absent.
func resourceID(ev *event.Event) string {
	v := bytes.TrimSpace(ev.Value)
	if len(v) == 0 || v[0] != '{' {
		return ev.ID
	}
	var top struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(v, &top); err != nil || len(top.ID) == 0 {
		return ev.ID
	}
	switch c := top.ID[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(top.ID, &s) == nil && s != "" {
			return s
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return string(top.ID)
	}
	return ev.ID
}

// appendJSONString appends s as a JSON string; HTML characters are left
// alone since the body is never embedded in a page.
func appendJSONString(b []byte, s string) []byte { return jsonenc.AppendString(b, s, false) }
