package ui

import (
	"bytes"
	"io"
	"net/http"

	"github.com/herald-dev/herald/internal/apiclient"
)

// client returns an API client that calls the admin API in process with
// token, as the browser's client: the API sees the browser's address, so
// its brute-force throttling counts the dashboard's sign-ins too.
func (h *Handler) client(r *http.Request, token string) *apiclient.Client {
	rt := inProcess{api: h.api, remote: r.RemoteAddr}
	return apiclient.New("http://herald.internal", token,
		apiclient.WithHTTPClient(&http.Client{Transport: rt}), apiclient.WithUserAgent("herald-ui"))
}

// inProcess is an http.RoundTripper that serves requests with a handler.
type inProcess struct {
	api    http.Handler
	remote string
}

func (p inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.RemoteAddr = p.remote
	req.RequestURI = req.URL.RequestURI()
	if req.Body == nil {
		req.Body = http.NoBody
	}
	rec := &recorder{header: http.Header{}}
	p.api.ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	return &http.Response{
		Status:        http.StatusText(rec.code),
		StatusCode:    rec.code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rec.header,
		Body:          io.NopCloser(&rec.body),
		ContentLength: int64(rec.body.Len()),
		Request:       req,
	}, nil
}

type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}
