package delivery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/idna"
)

// Client sends webhook requests. One Client serves every endpoint: it keeps
// keep-alive connections per endpoint, refuses destinations its policy does
// not allow at dial time, never follows redirects and never reads more of a
// response than it keeps. It is safe for concurrent use.
//
// An attempt runs entirely on its caller's goroutine: no goroutine and no
// buffer belong to a connection, so a request waiting for a slow endpoint
// costs its caller's goroutine, its socket and little else (net/http's
// Transport adds a read and a write goroutine and 8 KiB of buffers per
// connection). Buffers are pooled and held only while a request is written
// or a response parsed. The client speaks HTTP/1.1 only: HTTP/2 is not
// negotiated, even over TLS, which webhook endpoints accept as a matter of
// course. No proxy is used: HTTP(S)_PROXY would carry requests past the
// destination check.
//
// fasthttp writes the requests and parses the responses. Its Client and
// HostClient are not used, for what they cannot do here: their dial hook
// gets no context, so an attempt could not be cancelled while it resolves
// and connects; they keep every idle connection, with no per-endpoint cap;
// and their response header limit is the read buffer, which they hold for
// as long as the endpoint takes to answer.
type Client struct {
	dialer     *dialer
	tls        *tls.Config
	tlsTimeout time.Duration
	pool       *connPool
	maxBody    int64
	userAgent  string

	tracer      trace.Tracer                  // nil: the provider of the span in ctx, else the global one
	propagators propagation.TextMapPropagator // nil: the global propagator
	metrics     clientMetrics

	readers sync.Pool // *bufio.Reader of readBufferSize
	writers sync.Pool // *bufio.Writer of writeBufferSize

	// targets caches parsed URLs: every attempt to an endpoint sends to
	// the same URL, and parsing it was a good part of sending a request.
	targets     sync.Map // URL → target
	targetCount atomic.Int64
}

// maxTargets bounds the URL cache; past it URLs are parsed per request.
const maxTargets = 100000

const (
	// readBufferSize holds the header of almost any response; a larger
	// one is read again with maxResponseHeaderBytes of room.
	readBufferSize  = 4 << 10
	writeBufferSize = 4 << 10
	// maxResponseHeaderBytes bounds the status line and header fields of a
	// response, as net/http's MaxResponseHeaderBytes did.
	maxResponseHeaderBytes = 64 << 10
)

// NewClient returns a Client; see the Options for the defaults.
func NewClient(opts ...Option) *Client {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.tls != nil {
		tlsCfg = cfg.tls.Clone()
	}
	// HTTP/1.1 is all this client speaks.
	tlsCfg.NextProtos = []string{"http/1.1"}
	c := &Client{
		dialer:      newDialer(cfg.policy, cfg.resolve, &net.Dialer{Timeout: cfg.dialTimeout, KeepAlive: 30 * time.Second}),
		tls:         tlsCfg,
		tlsTimeout:  cfg.tlsTimeout,
		pool:        newConnPool(cfg.maxIdlePerHost, cfg.maxDialsPerHost, idleConnTimeout),
		maxBody:     cfg.maxResponseBytes,
		userAgent:   cfg.userAgent,
		propagators: cfg.propagators,
		metrics:     newClientMetrics(cfg.meterProvider),
	}
	if cfg.tracerProvider != nil {
		c.tracer = newTracer(cfg.tracerProvider)
	}
	return c
}

// CloseIdleConnections closes the keep-alive connections not in use, e.g.
// at shutdown.
func (c *Client) CloseIdleConnections() {
	c.pool.closeIdle()
}

// Do sends req once and reports what happened; it never returns a nil Err
// unless the endpoint answered 2xx. The attempt is bounded by req.Timeout
// (when > 0) and by ctx, whose span becomes the parent of the attempt's HTTP
// client span. A request is never sent twice: there are no automatic
// retries, except that a reused keep-alive connection that fails before a
// single byte of the request went out is replaced by a new one.
func (c *Client) Do(ctx context.Context, req *Request) Result {
	return c.Start(ctx, req).Wait()
}

// Pending is a request on its way: written, or failed before it could be.
// Wait gives its result.
type Pending struct {
	c     *Client
	ctx   context.Context
	span  trace.Span
	t     target
	size  int // of the request's body
	a     attempt
	start time.Time

	pc   *pconn
	stop func() bool // ends the cancellation hook; false once it ran
	sent bool        // some of the request reached the connection
	err  error       // set when the request failed before its response

	res  Result // the result when done is set before Wait
	done bool

	awaited  bool  // Await ran
	awaitErr error // what it found
	// held is the whole response, when Await read all of it and it has no
	// body, at answered: the connection is then back in the pool.
	held     []byte
	answered time.Time
}

// Await blocks until the response begins to arrive, the connection fails or
// the attempt's deadline passes, and does nothing else: a goroutine that
// calls it first holds a few frames of stack while the endpoint takes its
// time, whatever Wait needs afterwards. Wait awaits by itself when Await
// was not called.
func (p *Pending) Await() {
	if p.done || p.err != nil || p.awaited {
		return
	}
	p.awaited = true
	if p.awaitErr = p.pc.first.awaitResponse(); p.awaitErr == nil {
		p.release()
	}
}

// release gives the connection back as soon as the response is in, when
// what Await read is the whole of it and it has no body, as most answers
// to a webhook are. The response then waits to be finished without
// holding its connection, or the endpoint's end of it: in a fan-out,
// thousands of responses can wait for the CPU at once.
func (p *Pending) release() {
	r := &p.pc.first
	b := r.b[r.start:r.end]
	if !wholeBodiless(b) {
		return
	}
	p.held, p.answered = bytes.Clone(b), time.Now()
	r.start = r.end
	if p.stop() {
		p.c.pool.put(p.pc)
	} else {
		p.pc.conn.Close()
	}
	p.pc = nil
}

// wholeBodiless reports whether b is exactly one HTTP/1.1 response with no
// body, its connection left open for the next request: a status line and
// header fields of plain printable ASCII, ending in an empty line, nothing
// after it, a 204 or 304 or a Content-Length of 0, and no
// Transfer-Encoding or Connection field. Anything else is read from the
// connection as usual.
func wholeBodiless(b []byte) bool {
	if len(b) < len("HTTP/1.1 200\r\n\r\n") || string(b[:9]) != "HTTP/1.1 " || string(b[len(b)-4:]) != "\r\n\r\n" {
		return false
	}
	code := b[9:12]
	if code[0] < '2' || code[0] > '5' || !isDigit(code[1]) || !isDigit(code[2]) {
		return false
	}
	bodiless := string(code) == "204" || string(code) == "304"
	line, rest, ok := cutLine(b[12:])
	if !ok || (len(line) > 0 && line[0] != ' ') {
		return false
	}
	for {
		if line, rest, ok = cutLine(rest); !ok {
			return false
		}
		if len(line) == 0 {
			return bodiless && len(rest) == 0
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validHeaderName(string(line[:colon])) {
			return false
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if string(value) != "0" {
				return false
			}
			bodiless = true
		case bytes.EqualFold(name, []byte("Transfer-Encoding")), bytes.EqualFold(name, []byte("Connection")):
			return false
		}
	}
}

// cutLine cuts b at its first CRLF; the line must be printable ASCII or
// tabs.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	for i, c := range b {
		switch {
		case c == '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				return b[:i], b[i+2:], true
			}
			return nil, nil, false
		case c < ' ' && c != '\t', c > '~':
			return nil, nil, false
		}
	}
	return nil, nil, false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Start connects and writes req, and returns; Wait then waits for the
// response. Splitting the two lets the wait, which is nearly all of an
// attempt's time against a slow endpoint, run on a goroutine of its own
// whose stack holds only the wait: the goroutine that built and sent the
// request may be deep in its stack, a cost multiplied by every request in
// flight. Do is Start followed by Wait.
func (c *Client) Start(ctx context.Context, req *Request) *Pending {
	// The request is not kept: what waits for a slow endpoint's response
	// holds as little as it can.
	p := &Pending{c: c, size: len(req.Body)}
	t, err := c.target(req.URL)
	if err != nil {
		p.res, p.done = Result{Class: Refused, Err: err}, true
		return p
	}
	if err := checkHeader(req.Header); err != nil {
		p.res, p.done = Result{Class: Refused, Err: err}, true
		return p
	}
	p.t = t
	// The attempt's deadline is kept here and set on the connection, rather
	// than in a context with a timer of its own: whatever Do allocates lives
	// as long as the endpoint takes to answer.
	p.a = attempt{timeout: req.Timeout}
	if req.Timeout > 0 {
		p.a.deadline = time.Now().Add(req.Timeout)
	}
	if d, ok := ctx.Deadline(); ok && (p.a.deadline.IsZero() || d.Before(p.a.deadline)) {
		p.a.deadline = d
	}
	p.ctx, p.span = c.startSpan(ctx)
	p.start = time.Now()
	p.pc, p.stop, p.sent, p.err = c.send(p.ctx, &p.t, req, &p.a)
	return p
}

// Wait waits for the response of a request Start sent and reports what
// happened; it never returns a nil Err unless the endpoint answered 2xx.
// Call it once.
func (p *Pending) Wait() Result {
	if p.done {
		return p.res
	}
	c, t := p.c, &p.t
	var resp response
	err := p.err
	if err == nil {
		if resp, err = c.receive(p, &p.a); err != nil {
			err = p.a.classify(p.ctx, err)
		}
	}
	// A response read whole while awaited took until then, however long
	// it waited to be finished.
	latency := time.Since(p.start)
	if p.held != nil {
		latency = p.answered.Sub(p.start)
	}
	c.metrics.record(p.ctx, t, latency, p.sent, p.size, &resp, err)
	c.endSpan(p.span, t, &resp, err)
	if err != nil {
		res := Result{Latency: latency, Err: err, Class: Retryable}
		if _, ok := err.(*DestinationError); ok {
			res.Class = Refused
		}
		return res
	}
	res := Result{
		Status:  resp.status,
		Latency: latency,
		Body:    resp.body,
		Aborted: strings.EqualFold(strings.TrimSpace(resp.webhookDelivery), "abort"),
	}
	switch s := resp.status; {
	case s >= 200 && s < 300:
		res.Class = Delivered
		return res
	case s == http.StatusGone:
		res.Class = Gone
	case s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable:
		res.Class = Retryable
		res.RetryAfter = parseRetryAfter(resp.retryAfter, time.Now())
	default:
		res.Class = Retryable
	}
	se := &StatusError{Status: resp.status, Body: resp.body}
	if resp.status >= 300 && resp.status < 400 {
		se.Location = resp.location
	}
	res.Err = se
	return res
}

// poolKey identifies the endpoint a connection goes to: the URL's scheme
// and host (with its port, if it has one).
type poolKey struct {
	https bool
	host  string
}

// target is where a request goes, taken apart from its URL once. Its
// strings are, as far as possible, parts of the URL string itself.
type target struct {
	key        poolKey
	hostname   string // the URL's host name, for spans and metrics
	port       string // the URL's port, "" when it has none
	hostHeader string // Host
	uri        string // the request-target: path and query
	auth       string // Authorization from the URL's user info, if any
	fullURL    string // url.full: the URL without user info
}

// target is parseTarget's answer for raw, from the cache when it has one.
func (c *Client) target(raw string) (target, error) {
	if t, ok := c.targets.Load(raw); ok {
		return t.(target), nil
	}
	t, err := parseTarget(raw)
	if err == nil && c.targetCount.Add(1) <= maxTargets {
		c.targets.Store(raw, t)
	}
	return t, err
}

// parseTarget checks a webhook URL and takes it apart. The errors read as
// net/http's did; url.Error is dropped, since it repeats the URL, which may
// hold a token.
func parseTarget(raw string) (target, error) {
	var t target
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return t, fmt.Errorf("delivery: invalid URL: %w", err)
	}
	switch u.Scheme {
	case "http":
	case "https":
		t.key.https = true
	default:
		return t, fmt.Errorf("delivery: URL scheme %q is not http or https", u.Scheme)
	}
	t.key.host = u.Host
	t.hostname = u.Hostname()
	if t.hostname == "" {
		return t, errors.New("delivery: URL has no host")
	}
	host, err := asciiHost(t.hostname)
	if err != nil {
		return t, fmt.Errorf("delivery: invalid URL: host %q: %w", t.hostname, err)
	}
	t.port = u.Port()
	if t.port != "" {
		if _, err := strconv.ParseUint(t.port, 10, 16); err != nil {
			return t, fmt.Errorf("delivery: invalid URL: port %q", t.port)
		}
	}
	// Host carries the host in ASCII and no IPv6 zone, as net/http has it.
	t.hostHeader = u.Host
	if name := hostWithoutZone(host); name != t.hostname {
		t.hostHeader = name
		if strings.IndexByte(name, ':') >= 0 {
			t.hostHeader = "[" + name + "]"
		}
		if t.port != "" {
			t.hostHeader += ":" + t.port
		}
	}
	t.uri = u.RequestURI()
	t.fullURL = raw
	if u.User != nil {
		pw, _ := u.User.Password()
		t.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw))
		u.User = nil
		t.fullURL = u.String()
	}
	return t, nil
}

// addr is the host:port to dial, the host in ASCII.
func (t *target) addr() string {
	host, _ := asciiHost(t.hostname) // checked by parseTarget
	port := t.port
	if port == "" {
		port = "80"
		if t.key.https {
			port = "443"
		}
	}
	return net.JoinHostPort(host, port)
}

// serverName is the TLS server name: the host in ASCII without a zone.
func (t *target) serverName() string {
	host, _ := asciiHost(t.hostname)
	return hostWithoutZone(host)
}

func hostWithoutZone(h string) string {
	if i := strings.IndexByte(h, '%'); i >= 0 && strings.IndexByte(h, ':') >= 0 {
		return h[:i]
	}
	return h
}

// asciiHost returns an internationalized host name in its ASCII (punycode)
// form, as net/http sends and dials it.
func asciiHost(h string) (string, error) {
	for i := 0; i < len(h); i++ {
		if h[i] >= utf8.RuneSelf {
			return idna.Lookup.ToASCII(h)
		}
	}
	return h, nil
}

// checkHeader refuses a header that cannot be sent as it is: a name that is
// not a token, a value with CR, LF or another control character. Build
// never makes one; a Request made by hand might.
func checkHeader(h http.Header) error {
	for name, values := range h {
		if !validHeaderName(name) {
			return fmt.Errorf("delivery: header name %q is not a valid HTTP token", name)
		}
		for _, v := range values {
			if !validHeaderValue(v) {
				return fmt.Errorf("delivery: header %q has a control character in its value", name)
			}
		}
	}
	return nil
}

// response is what Do keeps of an HTTP response.
type response struct {
	status          int
	http11          bool
	body            []byte
	retryAfter      string
	location        string
	webhookDelivery string
}

// attempt is the state of one Do: its deadline and how far it got.
type attempt struct {
	deadline time.Time // zero: none
	timeout  time.Duration
	step     int
}

// send connects (or takes a kept-alive connection) and writes req. On
// success the connection is returned with the function that ends its
// cancellation hook; on failure the connection is gone and the error
// classified. A kept-alive connection the endpoint closed just as it was
// taken fails before a byte is written; nothing was sent, so a new
// connection may carry the request.
func (c *Client) send(ctx context.Context, t *target, req *Request, a *attempt) (_ *pconn, stop func() bool, sent bool, _ error) {
	for {
		pc, err := c.pool.take(ctx, t.key, a.deadline)
		if err != nil {
			return nil, nil, false, a.classify(ctx, err)
		}
		reused := pc != nil
		if !reused {
			pc, err = c.dial(ctx, t, a)
			c.pool.dialed(t.key)
			if err != nil {
				return nil, nil, false, a.classify(ctx, err)
			}
		}
		a.step = stepConnected
		stop, sent, err := c.write(ctx, pc, t, req, a)
		if err == nil {
			a.step = stepWritten
			return pc, stop, true, nil
		}
		if reused && !sent && a.expired(ctx) == nil {
			a.step = stepStart
			continue
		}
		return nil, nil, sent, a.classify(ctx, err)
	}
}

// write sets the attempt's deadline on pc and writes req. One deadline
// bounds writing and reading; cancelling ctx moves it to the past, which
// ends a blocked write or read at once. On failure pc is closed and sent
// says whether any of the request reached the connection.
func (c *Client) write(ctx context.Context, pc *pconn, t *target, req *Request, a *attempt) (stop func() bool, sent bool, err error) {
	if err := pc.conn.SetDeadline(a.deadline); err != nil {
		pc.conn.Close()
		return nil, false, err
	}
	stop = func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(aLongTimeAgo) })
	}
	pc.written = 0
	if err := c.writeRequest(ctx, pc, t, req); err != nil {
		stop()
		pc.conn.Close()
		return nil, pc.written > 0, err
	}
	return stop, true, nil
}

// receive waits for the response to the request written on pc, holding no
// buffer meanwhile (a slow endpoint then costs the waiting goroutine and
// the socket only), reads it, and keeps pc for reuse when it may be.
func (c *Client) receive(p *Pending, a *attempt) (resp response, err error) {
	p.Await()
	if p.held != nil {
		h := &heldResponse{}
		h.Reset(p.held)
		resp, _, err = c.readResponse(h)
		return resp, err
	}
	pc, stop := p.pc, p.stop
	reusable := false
	defer func() {
		if stop() && reusable {
			c.pool.put(pc)
		} else {
			pc.conn.Close()
		}
	}()
	if err = p.awaitErr; err != nil {
		if errors.Is(err, io.EOF) {
			err = errClosedBeforeResponse
		}
		return resp, err
	}
	resp, reusable, err = c.readResponse(&pc.first)
	return resp, err
}

var (
	// aLongTimeAgo is a deadline in the past, to interrupt I/O.
	aLongTimeAgo            = time.Unix(1, 0)
	errClosedBeforeResponse = errors.New("the endpoint closed the connection without responding")
	errHeaderTooLarge       = fmt.Errorf("response header larger than %d KiB", maxResponseHeaderBytes>>10)
)

// dial connects to t through the dialer, which checks the destination, and
// does the TLS handshake for https.
func (c *Client) dial(ctx context.Context, t *target, a *attempt) (*pconn, error) {
	if !a.deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, a.deadline)
		defer cancel()
	}
	conn, err := c.dialer.DialContext(ctx, "tcp", t.addr())
	if err != nil {
		return nil, err
	}
	if t.key.https {
		a.step = stepTLS
		cfg := c.tls
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = t.serverName()
		}
		tc := tls.Client(conn, cfg)
		hctx, cancel := context.WithTimeout(ctx, c.tlsTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			if a.expired(ctx) == nil && errors.Is(hctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("TLS handshake timeout after %s", c.tlsTimeout)
			}
			return nil, &NetworkError{Stage: StageTLS, Err: err}
		}
		conn = tc
	}
	return newPconn(conn, t.key), nil
}

// reqWriteExcludeHeader are the header fields the client writes itself or
// not at all, as net/http has them.
var reqWriteExcludeHeader = map[string]bool{
	"Host":              true,
	"User-Agent":        true,
	"Content-Length":    true,
	"Transfer-Encoding": true,
	"Trailer":           true,
}

// writeRequest writes the POST, with the trace context of ctx, and flushes
// it.
func (c *Client) writeRequest(ctx context.Context, pc *pconn, t *target, req *Request) error {
	fr := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(fr)
	h := &fr.Header
	// Fields go out as given, in this order: no special handling of Host,
	// Cookie or Content-Type, no default Content-Type or User-Agent.
	h.DisableSpecialHeader()
	h.DisableNormalizing()
	h.SetMethod(http.MethodPost)
	h.SetRequestURI(t.uri)
	h.Set("Host", t.hostHeader)
	ua := c.userAgent
	if ua == "" {
		if v, ok := req.Header[headerUserAgent]; ok {
			if len(v) > 0 {
				ua = v[0]
			}
		} else {
			ua = userAgent()
		}
	}
	if ua != "" {
		h.Set("User-Agent", ua)
	}
	var names [24]string
	for _, name := range sortedKeys(names[:0], req.Header) {
		if reqWriteExcludeHeader[name] {
			continue
		}
		for _, v := range req.Header[name] {
			h.Add(name, v)
		}
	}
	if t.auth != "" && len(req.Header["Authorization"]) == 0 {
		h.Set("Authorization", t.auth)
	}
	c.propagator().Inject(ctx, headerCarrier{h})
	fr.SetBodyRaw(req.Body)

	bw := c.writer(pc)
	err := fr.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	c.writers.Put(bw)
	return err
}

// sortedKeys appends the names of h to dst, sorted.
func sortedKeys(dst []string, h http.Header) []string {
	for name := range h {
		dst = append(dst, name)
	}
	slices.Sort(dst)
	return dst
}

func (c *Client) writer(w io.Writer) *bufio.Writer {
	if bw, ok := c.writers.Get().(*bufio.Writer); ok {
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, writeBufferSize)
}

func (c *Client) reader(r io.Reader) *bufio.Reader {
	if br, ok := c.readers.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, readBufferSize)
}

// readResponse reads the response header and at most maxBody bytes of the
// body. reusable is set when the response ended where it said it would and
// the connection may carry another request.
func (c *Client) readResponse(src responseSource) (resp response, reusable bool, err error) {
	br := c.reader(src)
	defer func() {
		br.Reset(nil)
		c.readers.Put(br)
	}()
	fr := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(fr)
	fr.StreamBody = true

	r := br
	err = fr.ReadLimitBody(r, 0)
	var small *fasthttp.ErrSmallBuffer
	if errors.As(err, &small) {
		// The header does not fit the pooled buffer: parse it again from
		// the start, with room for maxResponseHeaderBytes. br is not read
		// again, so what it holds stays valid.
		held, _ := br.Peek(br.Buffered())
		r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(held), src), maxResponseHeaderBytes)
		err = fr.ReadLimitBody(r, 0)
		if errors.As(err, &small) {
			err = errHeaderTooLarge
		}
	}
	if err != nil {
		held, _ := r.Peek(r.Buffered())
		return resp, false, responseError(err, held)
	}

	resp.status = fr.StatusCode()
	resp.http11 = fr.Header.IsHTTP11()
	resp.retryAfter = string(fr.Header.Peek("Retry-After"))
	resp.location = string(fr.Header.Peek("Location"))
	resp.webhookDelivery = string(fr.Header.Peek(headerWebhookDelivery))

	complete := true
	if body := fr.BodyStream(); body != nil {
		resp.body, complete = readCapped(body, c.maxBody, fr.Header.ContentLength())
		// A body that runs until the connection closes ends the connection.
		complete = complete && fr.Header.ContentLength() != -2
		// Closing a stream that was not read to its end reads no more of
		// it: the connection is closed below instead of drained.
		_ = fr.CloseBodyStream()
	}
	// After a 101 the connection speaks another protocol.
	reusable = complete && resp.status >= 200 && resp.http11 && !fr.ConnectionClose() &&
		r == br && br.Buffered() == 0 && src.buffered() == 0
	return resp, reusable, nil
}

// responseSource is what a response is read from: a connection, through
// what Await read of it, or a whole response Await read.
type responseSource interface {
	io.Reader
	buffered() int // bytes read from the connection and not yet returned
}

// heldResponse is a whole response read while awaited.
type heldResponse struct{ bytes.Reader }

func (h *heldResponse) buffered() int { return h.Len() }

// responseError says why a response header could not be read: the
// connection's error, or what was malformed. fasthttp's own messages repeat
// the whole header.
func responseError(err error, held []byte) error {
	var oe *net.OpError
	switch {
	case isTLSError(err):
		return err
	case errors.As(err, &oe):
		return oe
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("the endpoint closed the connection in the response header: %w", io.ErrUnexpectedEOF)
	case errors.Is(err, fasthttp.ErrTimeout):
		return os.ErrDeadlineExceeded
	case err == errHeaderTooLarge:
		return err
	}
	line := held
	if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	}
	if len(line) > 64 {
		line = line[:64]
	}
	return fmt.Errorf("malformed HTTP response %q", line)
}

// readCapped reads at most max bytes of body, never asking it for more, and
// reports whether the body ended. contentLength, when known (>= 0), sizes
// the buffer. A read error after the status line does not change the
// outcome, since the endpoint has answered: what was read is kept.
func readCapped(body io.Reader, max int64, contentLength int) ([]byte, bool) {
	size := int64(512)
	if contentLength >= 0 {
		size = int64(contentLength)
	}
	size = min(size, max)
	if size == 0 {
		// Nothing expected or nothing kept: see whether the body ends.
		n, err := body.Read(nil)
		return nil, n == 0 && err == io.EOF
	}
	buf := make([]byte, 0, size)
	for int64(len(buf)) < max {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(2*int64(cap(buf)), max))
			copy(grown, buf)
			buf = grown
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if len(buf) == 0 {
				buf = nil
			}
			return buf, err == io.EOF
		}
	}
	return buf, false
}

// classify turns an attempt's error into a *DestinationError or a
// *NetworkError whose Stage says how far the attempt got.
func (a *attempt) classify(ctx context.Context, err error) error {
	var de *DestinationError
	if errors.As(err, &de) {
		return de
	}
	switch a.expired(ctx) {
	case context.DeadlineExceeded:
		return &NetworkError{Stage: StageTimeout, Err: fmt.Errorf("no response within %s while %s: %w", a.timeout, a.doing(), context.DeadlineExceeded)}
	case context.Canceled:
		return &NetworkError{Stage: StageCanceled, Err: context.Canceled}
	}
	var ne *NetworkError
	if errors.As(err, &ne) {
		return ne
	}
	if isTLSError(err) {
		return &NetworkError{Stage: StageTLS, Err: err}
	}
	return &NetworkError{Stage: a.stage(), Err: err}
}

// expired returns ctx's error, or DeadlineExceeded once the attempt's
// deadline has passed.
func (a *attempt) expired(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !a.deadline.IsZero() && !time.Now().Before(a.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func isTLSError(err error) bool {
	var (
		rh  tls.RecordHeaderError
		cv  *tls.CertificateVerificationError
		al  tls.AlertError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		ech *tls.ECHRejectionError
	)
	return errors.As(err, &rh) || errors.As(err, &cv) || errors.As(err, &al) ||
		errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &ech)
}

// How far an attempt got.
const (
	stepStart = iota
	stepTLS
	stepConnected
	stepWritten
)

func (a *attempt) stage() string {
	switch a.step {
	case stepTLS:
		return StageTLS
	case stepConnected:
		return StageWrite
	case stepWritten:
		return StageRead
	}
	return StageDial
}

func (a *attempt) doing() string {
	switch a.step {
	case stepTLS:
		return "in the TLS handshake"
	case stepConnected:
		return "sending the request"
	case stepWritten:
		return "waiting for the response"
	}
	return "connecting"
}
