package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/libp2p/go-libp2p/core/network"
	"go.opentelemetry.io/otel/propagation"
)

// callSpec is one call by name, whatever entry point it came from.
type callSpec struct {
	ns, service      string
	callerNS, caller string
	in               *http.Request // method, URL path and query, headers (hop-by-hop removed by the transport)
	body             []byte        // buffered body (replayable); nil with stream
	stream           io.ReadCloser // a body too large to buffer: one attempt only
	idempotent       bool
	timeoutMs        int
	retries          *int
	key              string // ip_hash key (the caller's address)
	h2               bool   // send as HTTP/2 (gRPC)
}

// maxBufferedBody is the largest request body kept for retries; a larger (or unknown
// length beyond it) body streams through in one attempt.
const maxBufferedBody = 1 << 20

// idempotentMethod reports whether a method may be retried and hedged.
func idempotentMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// attemptError is an attempt that failed: not reached (safe to retry), or reached.
type attemptError struct {
	err        error
	notReached bool
	status     int
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

// send makes one attempt of cs at endpoint e. The response is the caller's to close.
func (m *Service) send(ctx context.Context, cs *callSpec, e Endpoint) (*http.Response, error) {
	out := cs.in.Clone(ctx)
	out.RequestURI = ""
	out.URL.Scheme = "http"
	out.URL.Host = e.Rec.Service + ".mesh"
	out.Host = e.Rec.Service + ".mesh"
	if cs.in.Host != "" {
		out.Host = cs.in.Host
	}
	out.Header.Del(hdrEndpoint)
	out.Header.Del(hdrCaller)
	out.Header.Del(hdrError)
	switch {
	case cs.stream != nil:
		out.Body = cs.stream
		out.ContentLength = cs.in.ContentLength
	case cs.body != nil:
		out.Body = io.NopCloser(bytes.NewReader(cs.body))
		out.ContentLength = int64(len(cs.body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(cs.body)), nil }
	default:
		out.Body = http.NoBody
		out.ContentLength = 0
	}
	otelProp.Inject(ctx, propagation.HeaderCarrier(out.Header))
	out.Header.Set(hdrCaller, cs.callerNS+"/"+cs.caller) // verified: the endpoint may rely on it
	var rt http.RoundTripper
	if e.Peer == m.self {
		if ok, why := m.Allowed(cs.callerNS, cs.caller, e.Rec.Namespace, e.Rec.Service); !ok {
			return nil, &attemptError{err: fmt.Errorf("%w: %s", ErrDenied, why), status: http.StatusForbidden}
		}
		scheme := "http"
		if e.Rec.TLS {
			scheme = "https"
		}
		out.URL.Scheme, out.URL.Host = scheme, e.Addr()
		rt = m.pool.localTransport(e)
	} else {
		out.Header.Set(hdrEndpoint, e.Key)
		rt = m.pool.remote(e.Peer, cs.h2 || e.Rec.Protocol == "grpc")
	}
	resp, err := rt.RoundTrip(out)
	if err != nil {
		return nil, &attemptError{err: fmt.Errorf("endpoint %s: %v", e.ID(), shortErr(err)), notReached: notReached(err)}
	}
	if resp.Header.Get(hdrError) != "" { // the far node refused before the endpoint saw it
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		msg := strings.TrimSpace(string(b))
		ae := &attemptError{err: fmt.Errorf("endpoint %s: %s", e.ID(), msg), status: resp.StatusCode}
		switch resp.StatusCode {
		case http.StatusForbidden:
			ae.err = fmt.Errorf("%w: %s", ErrDenied, msg)
		case http.StatusServiceUnavailable, http.StatusBadRequest:
			ae.notReached = true
		case http.StatusBadGateway:
			ae.notReached = strings.Contains(msg, "connection refused") || strings.Contains(msg, "no route")
		}
		return nil, ae
	}
	return resp, nil
}

// notReached reports whether a transport error means the request never left this node
// (the hop stream or the connection could not be opened).
func notReached(err error) bool {
	var se *network.StreamError
	if errors.As(err, &se) && (se.ErrorCode == network.StreamResourceLimitExceeded || se.ErrorCode == network.StreamProtocolNegotiationFailed) {
		return true // the far node refused the stream before reading the request
	}
	s := err.Error()
	return strings.Contains(s, "dial") || strings.Contains(s, "connection refused") || strings.Contains(s, "open stream") ||
		strings.Contains(s, "no addresses") || strings.Contains(s, "code: 0x1002") || strings.Contains(s, "protocols not supported")
}
