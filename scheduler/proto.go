package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/rads-lang/constellation/crdt"
	"github.com/rads-lang/constellation/internal/frame"
	"github.com/rads-lang/constellation/internal/httpapi"
)

// Scheduling protocol (/constellation/<cluster-hash>/sched/1.0.0), between admitted
// members only: one request frame, one response frame (4-byte big-endian length + JSON),
// then both sides close.
//
//	op "rights":  transfer up to Amount of the sender's bounded-counter rights on Key to
//	              Replica; the answer carries the granted amount and the delta, which the
//	              asker joins at once (it is also gossiped).
//	op "reserve": admit Reservation on the receiving node (the holder decides against its
//	              own free resources) and write it; the answer is the written record.
const (
	schedProtocolName = "sched/1.0.0"
	maxSchedRequest   = 16 << 10
	maxSchedResponse  = 4 << 20
	schedIOTimeout    = 10 * time.Second
)

type schedRequest struct {
	Op          string             `json:"op"`
	Key         string             `json:"key,omitempty"`
	Amount      uint64             `json:"amount,omitempty"`
	Replica     uint64             `json:"replica,omitempty"`
	Reservation *ReservationRecord `json:"reservation,omitempty"`
}

type schedResponse struct {
	Granted     uint64             `json:"granted,omitempty"`
	Delta       []byte             `json:"delta,omitempty"`
	Reservation *ReservationRecord `json:"reservation,omitempty"`
	Error       string             `json:"error,omitempty"`
	Code        string             `json:"code,omitempty"`
}

func (s *Scheduler) protocol() protocol.ID { return s.host.ProtocolID(schedProtocolName) }

func (s *Scheduler) startProtocol() {
	s.host.Libp2p().SetStreamHandler(s.protocol(), s.host.Guard(s.handleStream))
}

func (s *Scheduler) stopProtocol() {
	if s.host != nil {
		s.host.Libp2p().RemoveStreamHandler(s.protocol())
	}
}

func decodeSchedRequest(b []byte) (schedRequest, error) {
	var req schedRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("node: sched request: %w", err)
	}
	switch req.Op {
	case "rights":
		if req.Key == "" || len(req.Key) > 256 || req.Amount == 0 || req.Replica == 0 {
			return req, fmt.Errorf("node: sched request: rights needs key, amount and replica")
		}
	case "reserve":
		if req.Reservation == nil {
			return req, fmt.Errorf("node: sched request: reserve needs a reservation")
		}
	default:
		return req, fmt.Errorf("node: sched request: unknown op %q", req.Op)
	}
	return req, nil
}

func (s *Scheduler) handleStream(st network.Stream) {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(schedIOTimeout))
	b, err := frame.Read(st, maxSchedRequest)
	if err != nil {
		st.Reset()
		return
	}
	req, err := decodeSchedRequest(b)
	if err != nil {
		s.log.Warn("bad sched request", "peer", st.Conn().RemotePeer().String(), "err", err)
		st.Reset()
		return
	}
	var resp schedResponse
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
	out, _ := json.Marshal(resp)
	if err := frame.Write(st, out); err != nil {
		st.Reset()
	}
}

// call sends one request to peer p and returns its answer.
func (s *Scheduler) call(ctx context.Context, p peer.ID, req schedRequest) (schedResponse, error) {
	var resp schedResponse
	st, err := s.host.Libp2p().NewStream(ctx, p, s.protocol())
	if err != nil {
		return resp, err
	}
	defer st.Close()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(schedIOTimeout)
	}
	_ = st.SetDeadline(dl)
	b, _ := json.Marshal(req)
	if err := frame.Write(st, b); err != nil {
		st.Reset()
		return resp, err
	}
	_ = st.CloseWrite()
	rb, err := frame.Read(st, maxSchedResponse)
	if err != nil {
		st.Reset()
		return resp, err
	}
	if err := json.Unmarshal(rb, &resp); err != nil {
		return resp, fmt.Errorf("node: sched response: %w", err)
	}
	return resp, nil
}
