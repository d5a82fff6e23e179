package delivery

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// hostsResolver answers from a fixed table and fails the test for any other
// name, so that a literal IP that reaches it is noticed.
func hostsResolver(t *testing.T, hosts map[string][]string) Resolver {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		as, ok := hosts[host]
		if !ok {
			t.Errorf("resolver asked for %q", host)
			return nil, errors.New("unknown host")
		}
		var out []netip.Addr
		for _, a := range as {
			out = append(out, netip.MustParseAddr(a))
		}
		return out, nil
	}
}

func TestRefusedDestinations(t *testing.T) {
	// A server on loopback that must never see a request.
	var hits atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)

	resolver := hostsResolver(t, map[string][]string{
		"internal.test": {"10.0.0.5"},
		"loop.test":     {"127.0.0.1"},
		"mixed.test":    {"93.184.215.14", "10.0.0.5"},
		"mapped.test":   {"::ffff:127.0.0.1"},
		"meta.test":     {"169.254.169.254"},
	})
	c := NewClient(WithResolver(resolver))
	t.Cleanup(c.CloseIdleConnections)

	tests := []struct {
		host, reason string
	}{
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"[::1]", "loopback"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"[fc00::1]", "private"},
		{"[fd12:3456::1]", "private"},
		{"[fec0::1]", "private"},
		{"169.254.1.1", "link-local"},
		{"[fe80::1]", "link-local"},
		{"[fe80::1%25eth0]", "link-local"},
		{"169.254.169.254", "cloud metadata"},
		{"[fd00:ec2::254]", "cloud metadata"},
		{"100.64.0.1", "shared (CGNAT)"},
		{"100.127.255.255", "shared (CGNAT)"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"[::]", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"[ff02::1]", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"192.0.0.8", "reserved"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"192.0.2.1", "documentation"},
		{"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"},
		{"[2001:db8::1]", "documentation"},
		// IPv4-mapped and other IPv6 forms of IPv4 addresses.
		{"[::ffff:127.0.0.1]", "loopback"},
		{"[::ffff:7f00:1]", "loopback"},
		{"[::ffff:10.0.0.1]", "private"},
		{"[::ffff:169.254.169.254]", "cloud metadata"},
		{"[::ffff:0.0.0.0]", "unspecified"},
		{"[64:ff9b::7f00:1]", "loopback"},
		{"[64:ff9b::a00:1]", "private"},
		{"[::127.0.0.1]", "loopback"},
		{"[2002:7f00:1::]", "loopback"},
		{"[2002:a9fe:a9fe::1]", "cloud metadata"},
		// Legacy spellings of 127.0.0.1 and 10.0.0.1.
		{"2130706433", "loopback"},
		{"0177.0.0.1", "loopback"},
		{"0x7f.0.0.1", "loopback"},
		{"0x7f000001", "loopback"},
		{"0X7F.1", "loopback"},
		{"127.1", "loopback"},
		{"017700000001", "loopback"},
		{"127.0.0.1.", "loopback"},
		{"012.0.0.1", "private"},
		{"167772161", "private"},
		// Names whose answers are not allowed.
		{"internal.test", "private"},
		{"loop.test", "loopback"},
		{"mixed.test", "private"},
		{"mapped.test", "loopback"},
		{"meta.test", "cloud metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			req := requestTo(t, "http://"+tt.host+":"+port+"/")
			res := c.Do(context.Background(), req)
			if res.Class != Refused {
				t.Fatalf("class = %v, err %v; want refused", res.Class, res.Err)
			}
			var de *DestinationError
			if !errors.As(res.Err, &de) {
				t.Fatalf("err = %T %v, want *DestinationError", res.Err, res.Err)
			}
			if de.Reason != tt.reason {
				t.Errorf("reason = %q, want %q (%v)", de.Reason, tt.reason, de)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback server received %d requests", n)
	}
}

// The spellings above, with the system resolver instead of a hook: however
// the platform reads them, the request must not reach loopback.
func TestLegacySpellingsWithSystemResolver(t *testing.T) {
	var hits atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	c := NewClient()
	t.Cleanup(c.CloseIdleConnections)
	for _, host := range []string{"2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1", "localhost", "[::ffff:127.0.0.1]"} {
		res := c.Do(context.Background(), requestTo(t, "http://"+host+":"+port+"/"))
		if res.Class == Delivered || res.Err == nil {
			t.Errorf("%s: delivered", host)
		}
		var de *DestinationError
		if !errors.As(res.Err, &de) {
			t.Errorf("%s: err %v, want a refusal", host, res.Err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("loopback server received %d requests", n)
	}
}

func TestDestinationErrorMessage(t *testing.T) {
	tests := []struct {
		err  *DestinationError
		want string
	}{
		{&DestinationError{Host: "10.0.0.1", Addr: netip.MustParseAddr("10.0.0.1"), Reason: "private", private: true},
			"destination 10.0.0.1 is a private address; set delivery.allow_private_networks to allow it"},
		{&DestinationError{Host: "internal.test", Addr: netip.MustParseAddr("10.0.0.5"), Reason: "private", private: true},
			"destination internal.test (10.0.0.5) is a private address; set delivery.allow_private_networks to allow it"},
		{&DestinationError{Host: "169.254.169.254", Addr: netip.MustParseAddr("169.254.169.254"), Reason: "cloud metadata"},
			"destination 169.254.169.254 is a cloud metadata address"},
		{&DestinationError{Host: "::", Addr: netip.MustParseAddr("::"), Reason: "unspecified"},
			"destination :: is an unspecified address"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}

	// The message a real refusal carries.
	c := NewClient()
	t.Cleanup(c.CloseIdleConnections)
	res := c.Do(context.Background(), requestTo(t, "http://10.0.0.1/"))
	if want := "destination 10.0.0.1 is a private address; set delivery.allow_private_networks to allow it"; res.Err == nil || res.Err.Error() != want {
		t.Errorf("err = %v, want %q", res.Err, want)
	}
}

func TestAllowCIDRs(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	resolver := hostsResolver(t, map[string][]string{"receiver.internal": {"127.0.0.1"}})

	for _, prefix := range []string{"127.0.0.1/32", "127.0.0.0/8", "::ffff:127.0.0.1/128", "::ffff:127.0.0.0/104"} {
		c := newTestClientNoPrivate(t, AllowCIDRs(netip.MustParsePrefix(prefix)), WithResolver(resolver))
		for _, host := range []string{"127.0.0.1", "receiver.internal", "[::ffff:127.0.0.1]"} {
			if res := c.Do(context.Background(), requestTo(t, "http://"+host+":"+port+"/")); res.Class != Delivered {
				t.Errorf("allow %s, %s: %v %v", prefix, host, res.Class, res.Err)
			}
		}
	}

	c := newTestClientNoPrivate(t, AllowCIDRs(netip.MustParsePrefix("127.0.0.1/32")))
	for _, host := range []string{"127.0.0.2", "10.0.0.1", "169.254.169.254"} {
		if res := c.Do(context.Background(), requestTo(t, "http://"+host+":"+port+"/")); res.Class != Refused {
			t.Errorf("%s outside the allow-list: %v %v", host, res.Class, res.Err)
		}
	}
}

func newTestClientNoPrivate(t *testing.T, opts ...Option) *Client {
	c := NewClient(opts...)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestPolicy(t *testing.T) {
	open := policy{allowPrivate: true}
	closed := policy{}
	withMeta := policy{allow: []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32")}}
	tests := []struct {
		p    policy
		addr string
		ok   bool
	}{
		{closed, "93.184.215.14", true},
		{closed, "8.8.8.8", true},
		{closed, "2606:4700::1111", true},
		{closed, "172.32.0.1", true}, // just outside 172.16/12
		{closed, "100.128.0.1", true},
		{closed, "10.0.0.1", false},
		{open, "10.0.0.1", true},
		{open, "127.0.0.1", true},
		{open, "::1", true},
		{open, "fd00::1", true},
		{open, "169.254.1.1", true},
		{open, "100.64.0.1", true},
		{open, "::ffff:192.168.0.1", true},
		// allow_private_networks does not open these.
		{open, "169.254.169.254", false},
		{open, "::ffff:169.254.169.254", false},
		{open, "0.0.0.0", false},
		{open, "224.0.0.1", false},
		{open, "255.255.255.255", false},
		{open, "240.0.0.1", false},
		{withMeta, "169.254.169.254", true},
		{withMeta, "169.254.169.253", false},
	}
	for _, tt := range tests {
		err := tt.p.check("", netip.MustParseAddr(tt.addr))
		if (err == nil) != tt.ok {
			t.Errorf("%+v %s: err %v, want allowed=%v", tt.p, tt.addr, err, tt.ok)
		}
	}
}

// recordingDialer is a dialer whose connections are pipes, recording the
// addresses it was asked to dial.
type recordingDialer struct {
	mu     sync.Mutex
	dialed []string
}

func (r *recordingDialer) dial(_ context.Context, _, address string) (net.Conn, error) {
	r.mu.Lock()
	r.dialed = append(r.dialed, address)
	r.mu.Unlock()
	a, b := net.Pipe()
	b.Close()
	return a, nil
}

// DNS rebinding: the name answers a public address to the check and a
// private one to the connect. herald resolves once per dial and connects to
// exactly the address it checked, so the second answer is never dialled
// unchecked.
func TestDialerPinsTheCheckedAddress(t *testing.T) {
	var lookups atomic.Int32
	resolver := func(context.Context, string) ([]netip.Addr, error) {
		if lookups.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	rec := &recordingDialer{}
	d := &dialer{policy: policy{}, resolve: resolver, dial: rec.dial}

	conn, err := d.DialContext(context.Background(), "tcp", "rebind.test:443")
	if err != nil {
		t.Fatalf("first dial: %v", err)
	}
	conn.Close()
	if len(rec.dialed) != 1 || rec.dialed[0] != "93.184.215.14:443" {
		t.Fatalf("dialled %q, want the checked address 93.184.215.14:443", rec.dialed)
	}
	if n := lookups.Load(); n != 1 {
		t.Errorf("%d lookups for one dial; a second lookup is a rebinding window", n)
	}

	_, err = d.DialContext(context.Background(), "tcp", "rebind.test:443")
	var de *DestinationError
	if !errors.As(err, &de) || de.Addr != netip.MustParseAddr("127.0.0.1") || de.Host != "rebind.test" {
		t.Fatalf("second dial: %v, want a refusal of 127.0.0.1", err)
	}
	if len(rec.dialed) != 1 {
		t.Errorf("dialled %q after the refusal", rec.dialed)
	}
}

// One answer holding a public and then a private address is refused as a
// whole: falling back to the second address would reach it unchecked.
func TestDialerChecksEveryAddress(t *testing.T) {
	resolver := func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("192.168.0.10")}, nil
	}
	rec := &recordingDialer{}
	d := &dialer{resolve: resolver, dial: rec.dial}
	_, err := d.DialContext(context.Background(), "tcp", "two.test:80")
	var de *DestinationError
	if !errors.As(err, &de) || de.Reason != "private" {
		t.Fatalf("err = %v, want a private refusal", err)
	}
	if len(rec.dialed) != 0 {
		t.Errorf("dialled %q", rec.dialed)
	}
}

func TestDialerFallsBackToTheNextAddress(t *testing.T) {
	resolver := func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("2606:4700::1"), netip.MustParseAddr("93.184.215.14")}, nil
	}
	var dialed []string
	d := &dialer{resolve: resolver, dial: func(_ context.Context, _, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		if strings.HasPrefix(addr, "[") {
			return nil, errors.New("network unreachable")
		}
		a, b := net.Pipe()
		b.Close()
		return a, nil
	}}
	conn, err := d.DialContext(context.Background(), "tcp", "dual.test:443")
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if want := []string{"[2606:4700::1]:443", "93.184.215.14:443"}; strings.Join(dialed, ",") != strings.Join(want, ",") {
		t.Errorf("dialled %q, want %q", dialed, want)
	}
}

// The socket-level check catches an address that reaches the net.Dialer
// without going through DialContext's own check.
func TestDialerControlRefusesLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := newDialer(policy{}, defaultResolver, &net.Dialer{})
	_, err = d.dial(context.Background(), "tcp", ln.Addr().String())
	var de *DestinationError
	if !errors.As(err, &de) || de.Reason != "loopback" {
		t.Fatalf("err = %v, want a loopback refusal", err)
	}
}

func TestParseLegacyIPv4(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" for not an address
	}{
		{"2130706433", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0x7f.0.0.1", "127.0.0.1"},
		{"0x7F.0x0.0.01", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"10.65535", "10.0.255.255"},
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"1.2.3.4.", "1.2.3.4"},
		{"4294967295", "255.255.255.255"},
		{"4294967296", ""},
		{"256.0.0.1", ""},
		{"1.2.3.256", ""},
		{"1.2.65536", ""},
		{"1.2.3.4.5", ""},
		{"08.0.0.1", ""},
		{"0x7g.0.0.1", ""},
		{"example.com", ""},
		{"1e3", ""},
		{"", ""},
		{"1..2", ""},
		{"+1.2.3.4", ""},
		{"1_0.0.0.1", ""},
	}
	for _, tt := range tests {
		a, ok := parseLegacyIPv4(tt.in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tt.want {
			t.Errorf("parseLegacyIPv4(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
