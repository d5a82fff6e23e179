package delivery

import (
	"net/netip"
	"strconv"
	"strings"
)

// StatusError is a response that is not a 2xx.
type StatusError struct {
	Status int
	// Body is the start of the response body, as in Result.Body.
	Body []byte
	// Location is the Location header of a 3xx, which herald never follows.
	Location string
}

func (e *StatusError) Error() string {
	s := "HTTP " + strconv.Itoa(e.Status)
	switch {
	case e.Status >= 300 && e.Status < 400:
		if e.Location == "" {
			return s + ": redirect not followed (no Location)"
		}
		return s + ": redirect not followed: " + excerpt([]byte(e.Location), 256)
	case len(e.Body) > 0:
		// One line: the message ends up in a record header and a log field.
		return s + ": " + strings.Join(strings.Fields(excerpt(e.Body, 128)), " ")
	}
	return s
}

// Stages of a NetworkError.
const (
	StageDNS      = "dns"      // the host name did not resolve
	StageDial     = "dial"     // no TCP connection to any resolved address
	StageTLS      = "tls"      // the TLS handshake failed or timed out
	StageWrite    = "write"    // the connection failed while sending the request
	StageRead     = "read"     // the connection failed before a complete response header
	StageTimeout  = "timeout"  // the request's timeout expired
	StageCanceled = "canceled" // the caller's context was canceled (shutdown)
)

// NetworkError is an attempt that got no HTTP response.
type NetworkError struct {
	Stage string
	Err   error
}

func (e *NetworkError) Error() string { return e.Stage + ": " + e.Err.Error() }
func (e *NetworkError) Unwrap() error { return e.Err }

// DestinationError is a request herald refused to send because the address
// it resolved to is not allowed (see AllowPrivateNetworks and AllowCIDRs).
type DestinationError struct {
	// Host is the host of the URL; Addr is the address it resolved to, or
	// its literal form.
	Host string
	Addr netip.Addr
	// Reason is the kind of address: "loopback", "private", "link-local",
	// "cloud metadata", "shared (CGNAT)", "unspecified", "multicast",
	// "broadcast", "reserved", "benchmarking", "documentation".
	Reason string

	// private is set when AllowPrivateNetworks would have let it through.
	private bool
}

func (e *DestinationError) Error() string {
	var b strings.Builder
	b.WriteString("destination ")
	if e.Host != "" && e.Host != e.Addr.String() {
		b.WriteString(e.Host)
		b.WriteString(" (")
		b.WriteString(e.Addr.String())
		b.WriteString(")")
	} else {
		b.WriteString(e.Addr.String())
	}
	b.WriteString(" is ")
	b.WriteString(article(e.Reason))
	b.WriteString(" address")
	if e.private {
		b.WriteString("; set delivery.allow_private_networks to allow it")
	}
	return b.String()
}

func article(word string) string {
	if word != "" && strings.IndexByte("aeiou", word[0]) >= 0 {
		return "an " + word
	}
	return "a " + word
}
