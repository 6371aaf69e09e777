package locks

import (
	"fmt"
	"net/http"
	"time"

	"github.com/rads-lang/constellation/internal/httpapi"
)

// Operations of the forward protocol beyond the log entries'.
const (
	opGet uint8 = iota + 100
	opList
	opStatus
)

// Limits of one forwarded request.
const (
	MaxHolderBytes = 256
	MaxValueBytes  = 1 << 20
	// maxFrame bounds a request or response frame of the forward protocol.
	maxFrame = MaxValueBytes + 64<<10
	// maxListed bounds the leases one list answer carries.
	maxListed = 10000
)

// Request is one lock request forwarded to the leader (protocol locks/1.0.0, one CBOR
// frame each way).
type Request struct {
	Op        uint8  `cbor:"1,keyasint"`
	Path      string `cbor:"2,keyasint,omitempty"`
	Holder    string `cbor:"3,keyasint,omitempty"`
	TTL       int64  `cbor:"4,keyasint,omitempty"`
	Token     uint64 `cbor:"5,keyasint,omitempty"`
	ExpectRev uint64 `cbor:"6,keyasint,omitempty"`
	Value     []byte `cbor:"7,keyasint,omitempty"`
	// Hops counts forwards: a member that does not lead forwards once to the leader it
	// knows, never further.
	Hops uint8 `cbor:"8,keyasint,omitempty"`
}

// Response answers a Request.
type Response struct {
	Lease  *Lease   `cbor:"1,keyasint,omitempty"`
	Rev    uint64   `cbor:"2,keyasint,omitempty"`
	Value  []byte   `cbor:"3,keyasint,omitempty"`
	Found  bool     `cbor:"4,keyasint,omitempty"`
	Leases []Lease  `cbor:"5,keyasint,omitempty"`
	Status *Status  `cbor:"6,keyasint,omitempty"`
	Err    *wireErr `cbor:"7,keyasint,omitempty"`
	Leader string   `cbor:"8,keyasint,omitempty"`
}

// wireErr carries an *httpapi.Error.
type wireErr struct {
	Status int    `cbor:"1,keyasint"`
	Code   string `cbor:"2,keyasint"`
	Msg    string `cbor:"3,keyasint"`
}

func (e *wireErr) err() error {
	if e == nil {
		return nil
	}
	st := e.Status
	if st < 400 || st > 599 {
		st = http.StatusBadGateway
	}
	return &httpapi.Error{Status: st, Code: e.Code, Msg: e.Msg}
}

func toWireErr(err error) *wireErr {
	if err == nil {
		return nil
	}
	st, code, msg := httpapi.Status(err)
	return &wireErr{Status: st, Code: code, Msg: msg}
}

// DecodeRequest decodes and checks a forwarded request (untrusted network input).
func DecodeRequest(b []byte) (*Request, error) {
	if len(b) > maxFrame {
		return nil, fmt.Errorf("locks: request of %d bytes over %d", len(b), maxFrame)
	}
	var r Request
	if err := decMode.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("locks: request: %w", err)
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// check validates the fields a request of its op uses.
func (r *Request) check() error {
	switch r.Op {
	case opAcquire, opRenew, opRelease:
		if err := CheckPath(r.Path); err != nil {
			return err
		}
	case opCAS, opGet:
		if err := CheckKey(r.Path); err != nil {
			return err
		}
	case opList, opStatus:
	default:
		return httpapi.BadRequest("locks: unknown operation %d", r.Op)
	}
	switch {
	case len(r.Holder) > MaxHolderBytes:
		return httpapi.BadRequest("locks: holder of %d bytes; at most %d", len(r.Holder), MaxHolderBytes)
	case len(r.Value) > MaxValueBytes:
		return httpapi.BadRequest("locks: value of %d bytes; at most %d", len(r.Value), MaxValueBytes)
	case r.Op == opAcquire && r.Holder == "":
		return httpapi.BadRequest("locks: acquire without a holder; name who holds the lock")
	case r.Op == opAcquire && (r.TTL < int64(MinTTL) || r.TTL > int64(MaxTTL)):
		return httpapi.BadRequest("locks: ttl %s outside %s..%s", time.Duration(r.TTL), MinTTL, MaxTTL)
	case (r.Op == opRenew || r.Op == opRelease) && r.Token == 0:
		return httpapi.BadRequest("locks: token 0; give the token the acquire returned")
	}
	return nil
}

// DecodeResponse decodes a forwarded answer.
func DecodeResponse(b []byte) (*Response, error) {
	if len(b) > maxFrame {
		return nil, fmt.Errorf("locks: response of %d bytes over %d", len(b), maxFrame)
	}
	var r Response
	if err := decMode.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("locks: response: %w", err)
	}
	if len(r.Leases) > maxListed {
		return nil, fmt.Errorf("locks: response lists %d leases, over %d", len(r.Leases), maxListed)
	}
	return &r, nil
}
