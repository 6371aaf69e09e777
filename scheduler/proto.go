package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/p2p"
)

// Scheduling protocol (/constellation/<cluster-hash>/sched/2.0.0), a p2p.Service between
// admitted members: one CBOR request, one CBOR response, each a bounded frame with a
// deadline, then both sides close.
//
//	op "rights":  transfer up to Amount of the sender's bounded-counter rights on Key to
//	              Replica; the answer carries the granted amount and the delta, which the
//	              asker joins at once (it is also gossiped).
//	op "reserve": admit Reservation on the receiving node (the holder decides against its
//	              own free resources) and write it; the answer is the written record.
const (
	schedProtocolName = "sched/2.0.0"
	maxSchedFrame     = 4 << 20
	schedIOTimeout    = 10 * time.Second
)

type schedRequest struct {
	Op          string             `cbor:"1,keyasint,omitempty"`
	Key         string             `cbor:"2,keyasint,omitempty"`
	Amount      uint64             `cbor:"3,keyasint,omitempty"`
	Replica     uint64             `cbor:"4,keyasint,omitempty"`
	Reservation *ReservationRecord `cbor:"5,keyasint,omitempty"`
}

type schedResponse struct {
	Granted     uint64             `cbor:"1,keyasint,omitempty"`
	Delta       []byte             `cbor:"2,keyasint,omitempty"`
	Reservation *ReservationRecord `cbor:"3,keyasint,omitempty"`
	Error       string             `cbor:"4,keyasint,omitempty"`
	Code        string             `cbor:"5,keyasint,omitempty"`
}

func (s *Scheduler) startProtocol() error {
	svc, err := s.host.NewService(schedProtocolName, p2p.ServiceConfig{MaxFrame: maxSchedFrame, ReadTimeout: schedIOTimeout}, s.serve)
	if err != nil {
		return err
	}
	s.svc = svc
	return nil
}

func (s *Scheduler) stopProtocol() {
	if s.svc != nil {
		_ = s.svc.Close()
	}
}

// validSchedRequest checks a decoded request: a known op with its required fields.
func validSchedRequest(req schedRequest) error {
	switch req.Op {
	case "rights":
		if req.Key == "" || len(req.Key) > 256 || req.Amount == 0 || req.Replica == 0 {
			return fmt.Errorf("sched request: rights needs key, amount and replica")
		}
	case "reserve":
		if req.Reservation == nil {
			return fmt.Errorf("sched request: reserve needs a reservation")
		}
	default:
		return fmt.Errorf("sched request: unknown op %q", req.Op)
	}
	return nil
}

// decodeSchedRequest decodes (with the record codec's limits) and checks a request.
func decodeSchedRequest(b []byte) (schedRequest, error) {
	var req schedRequest
	if err := state.Decode(b, &req); err != nil {
		return req, fmt.Errorf("sched request: %w", err)
	}
	return req, validSchedRequest(req)
}

func (s *Scheduler) serve(ctx context.Context, st *p2p.Stream) error {
	var req schedRequest
	if err := st.ReadMsg(&req); err != nil {
		return err
	}
	if err := validSchedRequest(req); err != nil {
		s.log.Warn("bad sched request", "peer", st.Peer().String(), "err", err)
		return err
	}
	var resp schedResponse
	var err error
	switch req.Op {
	case "rights":
		resp, err = s.grantRights(req.Key, req.Amount, crdt.ReplicaID(req.Replica))
	case "reserve":
		var rec ReservationRecord
		rec, err = s.holdReservation(*req.Reservation)
		if err == nil {
			resp.Reservation = &rec
		}
	}
	if err != nil {
		_, code, _ := httpapi.Status(err)
		resp = schedResponse{Error: err.Error(), Code: code}
	}
	return st.WriteMsg(resp)
}

// call sends one request to peer p and returns its answer.
func (s *Scheduler) call(ctx context.Context, p peer.ID, req schedRequest) (schedResponse, error) {
	var resp schedResponse
	if s.svc == nil {
		return resp, fmt.Errorf("sched protocol not started")
	}
	err := s.svc.CallMsg(ctx, p, req, &resp)
	return resp, err
}
