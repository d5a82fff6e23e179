package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// blockedRange is a range of addresses a webhook may not reach by default.
type blockedRange struct {
	prefix netip.Prefix
	reason string
	// private ranges open up with AllowPrivateNetworks; the others only
	// with AllowCIDRs, since no test setup needs to reach them.
	private bool
}

func block(cidr, reason string, private bool) blockedRange {
	return blockedRange{netip.MustParsePrefix(cidr), reason, private}
}

// blocked is checked in order; the first match decides, so the metadata
// addresses come before the ranges that contain them.
var blocked = []blockedRange{
	block("169.254.169.254/32", "cloud metadata", false),
	block("fd00:ec2::254/128", "cloud metadata", false),

	block("0.0.0.0/8", "unspecified", false),
	block("10.0.0.0/8", "private", true),
	block("100.64.0.0/10", "shared (CGNAT)", true),
	block("127.0.0.0/8", "loopback", true),
	block("169.254.0.0/16", "link-local", true),
	block("172.16.0.0/12", "private", true),
	block("192.0.0.0/24", "reserved", false),
	block("192.0.2.0/24", "documentation", false),
	block("192.88.99.0/24", "reserved", false),
	block("192.168.0.0/16", "private", true),
	block("198.18.0.0/15", "benchmarking", false),
	block("198.51.100.0/24", "documentation", false),
	block("203.0.113.0/24", "documentation", false),
	block("224.0.0.0/4", "multicast", false),
	block("255.255.255.255/32", "broadcast", false),
	block("240.0.0.0/4", "reserved", false),

	block("::/128", "unspecified", false),
	block("::1/128", "loopback", true),
	block("64:ff9b:1::/48", "reserved", false),
	block("100::/64", "reserved", false),
	block("2001:db8::/32", "documentation", false),
	block("fc00::/7", "private", true),
	block("fe80::/10", "link-local", true),
	block("fec0::/10", "private", true), // deprecated site-local
	block("ff00::/8", "multicast", false),
}

// IPv6 ranges that carry an IPv4 address a gateway may forward to.
var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	v4Compat   = netip.MustParsePrefix("::/96")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	errNoAddrs = errors.New("no addresses")
)

// policy decides which destination addresses may be dialled.
type policy struct {
	allowPrivate bool
	allow        []netip.Prefix
}

// check returns a *DestinationError when a, the address host resolved to,
// may not be reached.
func (p *policy) check(host string, a netip.Addr) error {
	reason, private := p.classify(a.WithZone("").Unmap())
	if reason == "" {
		return nil
	}
	return &DestinationError{Host: host, Addr: a, Reason: reason, private: private}
}

// classify returns why a is refused, or "" when it is allowed.
func (p *policy) classify(a netip.Addr) (reason string, private bool) {
	if !a.IsValid() {
		return "unspecified", false
	}
	for _, pre := range p.allow {
		if pre.Contains(a) {
			return "", false
		}
	}
	for _, r := range blocked {
		if r.prefix.Contains(a) {
			if r.private && p.allowPrivate {
				return "", false
			}
			return r.reason, r.private
		}
	}
	if v4, ok := embeddedIPv4(a); ok {
		return p.classify(v4)
	}
	return "", false
}

// embeddedIPv4 extracts the IPv4 address of NAT64, IPv4-compatible and 6to4
// addresses, so that e.g. 64:ff9b::7f00:1 is judged as 127.0.0.1.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case nat64.Contains(a), v4Compat.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// Resolver looks up the addresses of a host name.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

func defaultResolver(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// dialer resolves a host once, checks every address against the policy and
// dials the checked addresses themselves, never the name: what was checked
// is what is connected to, so DNS rebinding has no second lookup to exploit.
type dialer struct {
	policy  policy
	resolve Resolver
	// dial connects to one "ip:port"; tests replace it to see what would be
	// dialled without connecting anywhere.
	dial func(ctx context.Context, network, address string) (net.Conn, error)
}

func newDialer(p policy, resolve Resolver, nd *net.Dialer) *dialer {
	d := &dialer{policy: p, resolve: resolve}
	// Belt and braces: the socket's own address is checked again, in case
	// anything ever dials a name through this dialer.
	nd.Control = func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("unexpected dial address %q: %w", address, err)
		}
		return d.policy.check(ap.Addr().String(), ap.Addr())
	}
	d.dial = nd.DialContext
	return d
}

// DialContext is the http.Transport's DialContext.
func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &NetworkError{Stage: StageDial, Err: err}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, &NetworkError{Stage: StageDial, Err: fmt.Errorf("invalid port %q", portStr)}
	}
	addrs, err := d.lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if err := d.policy.check(host, a); err != nil {
			return nil, err
		}
	}
	var first error
	for _, a := range addrs {
		conn, err := d.dial(ctx, network, netip.AddrPortFrom(a.Unmap(), uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	var de *DestinationError
	if errors.As(first, &de) {
		return nil, de
	}
	return nil, &NetworkError{Stage: StageDial, Err: first}
}

// lookup returns the addresses of host. IP literals, including the legacy
// IPv4 spellings (2130706433, 0177.0.0.1, 0x7f.0.0.1) that some resolvers
// and every browser accept, are taken as the address they denote rather
// than handed to a resolver that may read them differently.
func (d *dialer) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	if a, ok := parseLegacyIPv4(host); ok {
		return []netip.Addr{a}, nil
	}
	addrs, err := d.resolve(ctx, host)
	if err != nil {
		return nil, &NetworkError{Stage: StageDNS, Err: err}
	}
	if len(addrs) == 0 {
		return nil, &NetworkError{Stage: StageDNS, Err: fmt.Errorf("%s: %w", host, errNoAddrs)}
	}
	return addrs, nil
}

// parseLegacyIPv4 parses inet_aton's forms: one to four parts, each decimal,
// octal (leading 0) or hex (0x), the last part filling the remaining bytes.
func parseLegacyIPv4(s string) (netip.Addr, bool) {
	s = strings.TrimSuffix(s, ".") // a fully qualified "127.0.0.1." too
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var vals [4]uint64
	for i, p := range parts {
		v, ok := parseLegacyPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	n := len(parts)
	for i := 0; i < n-1; i++ {
		if vals[i] > 0xff {
			return netip.Addr{}, false
		}
	}
	if vals[n-1] >= 1<<(8*(5-n)) {
		return netip.Addr{}, false
	}
	var ip uint32
	for i := 0; i < n-1; i++ {
		ip |= uint32(vals[i]) << (24 - 8*i)
	}
	ip |= uint32(vals[n-1])
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

func parseLegacyPart(p string) (uint64, bool) {
	base := 10
	switch {
	case p == "":
		return 0, false
	case len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X"):
		base, p = 16, p[2:]
	case p == "0x" || p == "0X":
		return 0, true
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	v, err := strconv.ParseUint(p, base, 64)
	if err != nil || v > 0xffffffff {
		return 0, false
	}
	return v, true
}
