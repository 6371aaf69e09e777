package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/instances"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/membership"
	"github.com/rads-lang/constellation/internal/state"
	"github.com/rads-lang/constellation/sched"
)

// Reservations hold capacity on one node for a while (the seed's constellation.reserve):
// the receiving node picks a node with sched.Place (binpack), and that node, the only
// authority over its resources, admits the reservation against its free resources and
// writes the record (collection "reservations"). Until it expires or is used or
// released, the reserved amount is not free for other creates on that node (the instance
// manager's admission subtracts it) nor for placements (sched.Node.Reserved).
// `create --reservation ID` runs on the holder and consumes it. Expiry compares the
// record's expires_at with each node's wall clock: every node decides the same way
// (up to clock offset), and the holder removes expired records.

// ReservationRecord is a reservation (collection "reservations"; POST answers it).
type ReservationRecord struct {
	ID         string    `cbor:"1,keyasint,omitempty"`
	Node       string    `cbor:"2,keyasint,omitempty"`
	NodeID     string    `cbor:"3,keyasint,omitempty"`
	CPUCores   float64   `cbor:"4,keyasint,omitempty"`
	RAMMB      int64     `cbor:"5,keyasint,omitempty"`
	DiskMB     int64     `cbor:"6,keyasint,omitempty"`
	Priority   int       `cbor:"7,keyasint,omitempty"`
	CreatedAt  time.Time `cbor:"8,keyasint,omitempty"`
	ExpiresAt  time.Time `cbor:"9,keyasint,omitempty"`
	UsedBy     string    `cbor:"10,keyasint,omitempty"` // the instance created from it
	Status     string    `cbor:"11,keyasint,omitempty"` // active, used, expired (computed on read)
	DurationS  int64     `cbor:"12,keyasint,omitempty"`
	RemainingS float64   `cbor:"13,keyasint,omitempty"`
}

// maxReservationSeconds bounds a reservation's duration (30 days).
const maxReservationSeconds = 30 * 24 * 3600

func (r ReservationRecord) resources() sched.Resources {
	return sched.Resources{CPUMilli: sched.CPUCores(r.CPUCores), RAMMB: r.RAMMB, DiskMB: r.DiskMB}
}

// live reports whether the reservation still holds capacity at now.
func (r ReservationRecord) live(now time.Time) bool {
	return r.UsedBy == "" && now.Before(r.ExpiresAt)
}

func (r ReservationRecord) withStatus(now time.Time) ReservationRecord {
	switch {
	case r.UsedBy != "":
		r.Status = "used"
	case !now.Before(r.ExpiresAt):
		r.Status = "expired"
	default:
		r.Status = "active"
		r.RemainingS = math.Round(r.ExpiresAt.Sub(now).Seconds()*10) / 10
	}
	return r
}

func normalizeReservation(q *api.ReservationRequest) (ReservationRecord, error) {
	var r ReservationRecord
	if q.CPUCores < 0 || q.CPUPercent < 0 || q.CPUCores > 1024 || q.CPUPercent > 100*1024 {
		return r, httpapi.BadRequest(`invalid field "cpu_cores" or "cpu_percent": must be positive, e.g. "cpu_cores": 2`)
	}
	if q.CPUCores != 0 && q.CPUPercent != 0 {
		return r, httpapi.BadRequest(`give either "cpu_cores" or "cpu_percent", not both`)
	}
	if q.RAMGB != 0 && q.RAMMB != 0 {
		return r, httpapi.BadRequest(`give either "ram_mb" or "ram_gb", not both`)
	}
	if q.RAMGB < 0 || q.RAMMB < 0 || q.DiskMB < 0 || q.RAMGB > 1<<20 {
		return r, httpapi.BadRequest(`fields "ram_mb", "ram_gb" and "disk_mb" must be positive`)
	}
	if q.DurationSeconds <= 0 || q.DurationSeconds > maxReservationSeconds {
		return r, httpapi.BadRequest(`invalid field "duration_seconds": %d; 1 to %d, e.g. 3600`, q.DurationSeconds, maxReservationSeconds)
	}
	r.CPUCores = q.CPUCores + q.CPUPercent/100
	r.RAMMB = q.RAMMB + int64(q.RAMGB*1024)
	r.DiskMB = q.DiskMB
	if r.CPUCores == 0 && r.RAMMB == 0 && r.DiskMB == 0 {
		return r, httpapi.BadRequest(`a reservation needs at least one of "cpu_cores", "cpu_percent", "ram_mb", "ram_gb", "disk_mb"`)
	}
	r.Priority = sched.DefaultPriority
	if q.Priority != nil {
		r.Priority = int(*q.Priority)
	}
	r.DurationS = q.DurationSeconds
	return r, nil
}

func newReservationID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "rsv-" + hex.EncodeToString(b[:])
}

// reserve places a reservation and has the chosen node hold it.
func (s *Scheduler) reserve(ctx context.Context, req api.ReservationRequest) (ReservationRecord, error) {
	rec, err := normalizeReservation(&req)
	if err != nil {
		return rec, err
	}
	rec.ID = newReservationID()
	var avoid []string
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		st := s.snapshot()
		cl := s.buildCluster(st)
		sr := sched.Request{Deployment: rec.ID, Instances: []string{rec.ID}, Resources: rec.resources(),
			Strategy: sched.StrategyBinpack, Priority: rec.Priority, Avoid: avoid}
		if req.Node != "" {
			name := req.Node
			if nm, ok := st.nameOf[req.Node]; ok {
				name = nm
			}
			c, err := sched.ParseConstraint("node.name=" + name)
			if err != nil {
				return rec, httpapi.BadRequest(`invalid field "node" %q`, req.Node)
			}
			sr.Constraints = []sched.Constraint{c}
		}
		plan, err := cl.c.Place(sr, sched.Options{DisablePreemption: true})
		if err != nil || len(plan.Placements) == 0 {
			if lastErr != nil {
				return rec, lastErr
			}
			return rec, fmt.Errorf("%w: no node can hold the reservation: %v", instances.ErrInsufficientResources, err)
		}
		target := plan.Placements[0].Node
		rec.Node, rec.NodeID = target, st.idOf[target]
		now := s.now().UTC()
		rec.CreatedAt = now.Truncate(time.Millisecond)
		rec.ExpiresAt = now.Add(time.Duration(rec.DurationS) * time.Second).Truncate(time.Millisecond)
		var held ReservationRecord
		if rec.NodeID == st.selfID {
			held, err = s.holdReservation(rec)
		} else {
			pid, perr := peer.Decode(rec.NodeID)
			if perr != nil {
				return rec, perr
			}
			resp, cerr := s.call(ctx, pid, schedRequest{Op: "reserve", Reservation: &rec})
			switch {
			case cerr != nil:
				err = fmt.Errorf("%w: node %s: %w", membership.ErrNodeUnavailable, target, cerr)
			case resp.Error != "":
				err = remoteError(resp.Code, resp.Error)
			case resp.Reservation == nil:
				err = fmt.Errorf("node: node %s answered no reservation", target)
			default:
				held = *resp.Reservation
			}
		}
		if err == nil {
			return held.withStatus(s.now()), nil
		}
		lastErr = err
		avoid = append(avoid, target)
	}
	return rec, lastErr
}

// holdReservation admits a reservation on this node against its free resources and
// writes it.
func (s *Scheduler) holdReservation(rec ReservationRecord) (ReservationRecord, error) {
	rec.Node, rec.NodeID = s.cfg.Name, s.host.ID().String()
	rec.UsedBy, rec.Status, rec.RemainingS = "", "", 0
	if rec.ID == "" || len(rec.ID) > 64 || rec.DurationS <= 0 || rec.DurationS > maxReservationSeconds {
		return rec, httpapi.BadRequest("invalid reservation")
	}
	// Admitted against the free resources with creates held off, so a concurrent create
	// cannot take the same resources.
	err := s.inst.Admit(func(free instances.Free) error {
		need := rec.resources()
		var short []string
		if float64(need.CPUMilli)/10 > free.CPUPercent {
			short = append(short, fmt.Sprintf("cpu: asked %s cores, free %s", fmtNum(rec.CPUCores), fmtNum(round(math.Max(0, free.CPUPercent)/100, 2))))
		}
		if need.RAMMB > free.RAMMB {
			short = append(short, fmt.Sprintf("ram_mb: asked %d, free %d", need.RAMMB, max(0, free.RAMMB)))
		}
		if need.DiskMB > free.DiskMB {
			short = append(short, fmt.Sprintf("disk_mb: asked %d, free %d", need.DiskMB, max(0, free.DiskMB)))
		}
		if len(short) > 0 {
			return fmt.Errorf("%w on node %s for reservation: %v", instances.ErrInsufficientResources, s.cfg.Name, short)
		}
		var w schedWrites
		w.put(CollReservations, rec.ID, rec)
		s.apply(&w)
		return nil
	})
	return rec, err
}

// Reserved is what this node's live reservations hold (except those being consumed by a
// create right now). The instance service's admission subtracts it (instances.Reservations).
func (s *Scheduler) Reserved() (cpuPercent float64, ramMB, diskMB int64) {
	now := s.now()
	self := s.host.ID().String()
	var cpuMilli, ram, disk int64
	var raw [][]byte
	s.st.View(func(v *state.View) {
		for _, k := range v.Keys(CollReservations) {
			if b, _, ok := v.GetLWW(CollReservations, k); ok {
				raw = append(raw, b)
			}
		}
	})
	for _, v := range raw {
		r, err := decodeRecord[ReservationRecord](v)
		if err != nil || r.NodeID != self || !r.live(now) {
			continue
		}
		s.mu.Lock()
		consuming := s.consuming[r.ID]
		s.mu.Unlock()
		if consuming {
			continue
		}
		res := r.resources()
		cpuMilli += res.CPUMilli
		ram += res.RAMMB
		disk += res.DiskMB
	}
	return float64(cpuMilli) / 10, ram, disk
}

// reservation returns a reservation record.
func (s *Scheduler) reservation(id string) (ReservationRecord, bool) {
	v, ok := s.get(CollReservations, id)
	if !ok {
		return ReservationRecord{}, false
	}
	r, err := decodeRecord[ReservationRecord](v)
	return r, err == nil
}

// prepareReservedCreate checks a create's reservation and points the create at its
// holder, filling resources the request leaves out from the reservation.
func (s *Scheduler) PrepareReservedCreate(req *api.CreateRequest) error {
	r, ok := s.reservation(req.Reservation)
	if !ok {
		return fmt.Errorf("%w: %q ('constellation reserve' returns IDs; expired and released ones are gone)", ErrReservationNotFound, req.Reservation)
	}
	if !r.live(s.now()) {
		return fmt.Errorf("%w: %s is %s", ErrReservationNotFound, r.ID, r.withStatus(s.now()).Status)
	}
	if req.Node != "" && req.Node != r.Node && req.Node != r.NodeID {
		return httpapi.BadRequest(`field "node" %q conflicts with reservation %s, held by node %s`, req.Node, r.ID, r.Node)
	}
	req.Node = r.Node
	if req.CPUPercent == 0 && req.CPUCores == 0 {
		req.CPUPercent = r.CPUCores * 100
	}
	if req.RAMMB == 0 && req.RAMGB == 0 {
		req.RAMMB = r.RAMMB
	}
	if req.DiskMB == 0 {
		req.DiskMB = r.DiskMB
	}
	return nil
}

// createReserved runs a create on the reservation's holder (this node), consuming it.
func (s *Scheduler) CreateReserved(ctx context.Context, req *api.CreateRequest) (instances.Record, error) {
	r, ok := s.reservation(req.Reservation)
	if !ok || !r.live(s.now()) || r.NodeID != s.host.ID().String() {
		return instances.Record{}, fmt.Errorf("%w: %q is not held by node %s", ErrReservationNotFound, req.Reservation, s.cfg.Name)
	}
	s.mu.Lock()
	if s.consuming[r.ID] {
		s.mu.Unlock()
		return instances.Record{}, fmt.Errorf("%w: reservation %s is being used by another create", instances.ErrExists, r.ID)
	}
	s.consuming[r.ID] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.consuming, r.ID)
		s.mu.Unlock()
	}()
	rec, err := s.inst.Create(ctx, req)
	if err != nil {
		return rec, err
	}
	r.UsedBy = req.Name
	var w schedWrites
	w.put(CollReservations, r.ID, r)
	s.apply(&w)
	return rec, nil
}

// expireReservations removes this node's expired and used reservations.
func (s *Scheduler) expireReservations(st *schedState) {
	var w schedWrites
	for id, r := range st.resv {
		if r.NodeID != st.selfID {
			continue
		}
		if !r.live(st.now) {
			w.del(CollReservations, id)
			if r.UsedBy == "" {
				s.log.Info("reservation expired", "id", id)
			}
		}
	}
	s.apply(&w)
}

// remoteError rebuilds a peer's error answer with its class: a reservation a peer refused
// for lack of resources stays insufficient_resources, a bad request stays a bad request,
// anything else keeps its code in the message.
func remoteError(code, msg string) error {
	switch code {
	case "insufficient_resources":
		return fmt.Errorf("%w: %s", instances.ErrInsufficientResources, msg)
	case "quota":
		return fmt.Errorf("%w: %s", ErrQuotaExceeded, msg)
	case "", "internal":
		return errors.New(msg)
	}
	return httpapi.Errorf(codeStatus(code), code, "%s", msg)
}

// codeStatus is the HTTP status of an API error code a peer sent.
func codeStatus(code string) int {
	switch code {
	case "bad_request":
		return http.StatusBadRequest
	case "not_found":
		return http.StatusNotFound
	case "unavailable":
		return http.StatusServiceUnavailable
	case "timeout":
		return http.StatusGatewayTimeout
	case "exists", "conflict":
		return http.StatusConflict
	}
	return http.StatusBadGateway
}
