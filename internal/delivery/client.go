package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// Client sends webhook requests. One Client serves every endpoint: it keeps
// keep-alive connections per endpoint, refuses destinations its policy does
// not allow at dial time, never follows redirects and never reads more of a
// response than it keeps. It is safe for concurrent use.
type Client struct {
	http      *http.Client
	transport *http.Transport
	maxBody   int64
	userAgent string
}

// NewClient returns a Client; see the Options for the defaults.
func NewClient(opts ...Option) *Client {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	d := newDialer(cfg.policy, cfg.resolve, &net.Dialer{Timeout: cfg.dialTimeout, KeepAlive: 30 * time.Second})

	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.tls != nil {
		tlsCfg = cfg.tls.Clone()
	}
	tr := &http.Transport{
		// No proxy: an HTTP(S)_PROXY from the environment would otherwise
		// carry requests past the destination check.
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSClientConfig:        tlsCfg,
		TLSHandshakeTimeout:    cfg.tlsTimeout,
		MaxIdleConnsPerHost:    cfg.maxIdlePerHost,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
	}
	var otelOpts []otelhttp.Option
	if cfg.tracerProvider != nil {
		otelOpts = append(otelOpts, otelhttp.WithTracerProvider(cfg.tracerProvider))
	}
	if cfg.propagators != nil {
		otelOpts = append(otelOpts, otelhttp.WithPropagators(cfg.propagators))
	}
	return &Client{
		http: &http.Client{
			Transport: otelhttp.NewTransport(tr, otelOpts...),
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		transport: tr,
		maxBody:   cfg.maxResponseBytes,
		userAgent: cfg.userAgent,
	}
}

// CloseIdleConnections closes the keep-alive connections not in use, e.g.
// at shutdown.
func (c *Client) CloseIdleConnections() {
	c.transport.CloseIdleConnections()
}

// Do sends req once and reports what happened; it never returns a nil Err
// unless the endpoint answered 2xx. The attempt is bounded by req.Timeout
// (when > 0) and by ctx, whose span becomes the parent of the attempt's HTTP
// client span.
func (c *Client) Do(ctx context.Context, req *Request) Result {
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	var p progress
	ctx = httptrace.WithClientTrace(ctx, p.trace())

	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		// url.Error repeats the URL, which may hold a token; keep the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Result{Class: Refused, Err: fmt.Errorf("delivery: invalid URL: %w", err)}
	}
	if s := hr.URL.Scheme; s != "http" && s != "https" {
		return Result{Class: Refused, Err: fmt.Errorf("delivery: URL scheme %q is not http or https", s)}
	}
	if hr.URL.Host == "" {
		return Result{Class: Refused, Err: errors.New("delivery: URL has no host")}
	}
	hr.Header = req.Header.Clone()
	if hr.Header == nil {
		hr.Header = make(http.Header)
	}
	if c.userAgent != "" {
		hr.Header.Set(headerUserAgent, c.userAgent)
	}

	start := time.Now()
	resp, err := c.http.Do(hr)
	if err != nil {
		res := Result{Latency: time.Since(start), Err: classify(ctx, &p, req.Timeout, err), Class: Retryable}
		if _, ok := res.Err.(*DestinationError); ok {
			res.Class = Refused
		}
		return res
	}
	body := c.readBody(resp)
	res := Result{
		Status:  resp.StatusCode,
		Latency: time.Since(start),
		Body:    body,
		Aborted: strings.EqualFold(strings.TrimSpace(resp.Header.Get(headerWebhookDelivery)), "abort"),
	}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		res.Class = Delivered
		return res
	case s == http.StatusGone:
		res.Class = Gone
	case s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable:
		res.Class = Retryable
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	default:
		res.Class = Retryable
	}
	se := &StatusError{Status: resp.StatusCode, Body: body}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		se.Location = resp.Header.Get("Location")
	}
	res.Err = se
	return res
}

// readBody reads at most maxBody bytes and closes the body. Closing a body
// that was not read to its end drops the connection instead of draining it,
// so an endless response costs nothing beyond the cap.
func (c *Client) readBody(resp *http.Response) []byte {
	defer resp.Body.Close()
	// A read error after the status line does not change the outcome: the
	// endpoint has answered. What was read is kept.
	b, _ := io.ReadAll(io.LimitReader(resp.Body, c.maxBody))
	if len(b) == 0 {
		return nil
	}
	return b
}

// classify turns an error of http.Client.Do into a *DestinationError or a
// *NetworkError whose Stage says how far the attempt got.
func classify(ctx context.Context, p *progress, timeout time.Duration, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL may hold a token; the caller knows it anyway
	}
	var de *DestinationError
	if errors.As(err, &de) {
		return de
	}
	switch ctx.Err() {
	case context.DeadlineExceeded:
		return &NetworkError{Stage: StageTimeout, Err: fmt.Errorf("no response within %s while %s: %w", timeout, p.doing(), err)}
	case context.Canceled:
		return &NetworkError{Stage: StageCanceled, Err: err}
	}
	var ne *NetworkError
	if errors.As(err, &ne) {
		return ne
	}
	if isTLSError(err) {
		return &NetworkError{Stage: StageTLS, Err: err}
	}
	return &NetworkError{Stage: p.stage(), Err: err}
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

// progress records how far a request got, from httptrace callbacks that
// may run on the transport's dialing goroutine.
type progress struct{ step atomic.Int32 }

const (
	stepStart int32 = iota
	stepTLS
	stepConnected
	stepWritten
)

func (p *progress) advance(s int32) {
	for {
		cur := p.step.Load()
		if cur >= s || p.step.CompareAndSwap(cur, s) {
			return
		}
	}
}

func (p *progress) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		TLSHandshakeStart: func() { p.advance(stepTLS) },
		GotConn:           func(httptrace.GotConnInfo) { p.advance(stepConnected) },
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				p.advance(stepWritten)
			}
		},
	}
}

func (p *progress) stage() string {
	switch p.step.Load() {
	case stepTLS:
		return StageTLS
	case stepConnected:
		return StageWrite
	case stepWritten:
		return StageRead
	}
	return StageDial
}

func (p *progress) doing() string {
	switch p.step.Load() {
	case stepTLS:
		return "in the TLS handshake"
	case stepConnected:
		return "sending the request"
	case stepWritten:
		return "waiting for the response"
	}
	return "connecting"
}
