package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/p2p"
)

// PprofProtocol forwards a profile request to the node it names: one request frame
// (pprofRequest), answered by one status frame (pprofStatus) then the profile in raw
// frames of at most 512 KiB until the stream ends.
const PprofProtocol = "monitor-pprof/1.0.0"

// Profiles a node can take, and the bounds of a CPU profile's duration.
var Profiles = []string{"cpu", "heap", "goroutine", "mutex", "allocs", "block"}

const (
	maxProfileSeconds = 300
	pprofChunk        = 512 << 10
)

// ErrProfileBusy means a CPU profile already runs on the node (the runtime takes one at a time).
var ErrProfileBusy = errors.New("a CPU profile is already running on this node")

// errUnavailable: the named node did not answer.
var errUnavailable = errors.New("node unavailable")

type pprofRequest struct {
	Profile string `cbor:"1,keyasint"`
	Seconds int    `cbor:"2,keyasint"`
}

type pprofStatus struct {
	Err string `cbor:"1,keyasint,omitempty"`
}

func init() {
	httpapi.Classify(http.StatusConflict, "busy", ErrProfileBusy)
	httpapi.Classify(http.StatusServiceUnavailable, "unavailable", errUnavailable)
}

// cpuProfile serialises CPU profiles (the runtime allows one at a time).
var cpuProfile sync.Mutex

func checkProfile(name string, seconds int) error {
	known := false
	for _, p := range Profiles {
		known = known || p == name
	}
	if !known {
		return fmt.Errorf("%w: unknown profile %q; want one of cpu, heap, goroutine, mutex, allocs, block", ErrBadQuery, name)
	}
	if seconds < 1 || seconds > maxProfileSeconds {
		return fmt.Errorf("%w: seconds %d: want 1 to %d", ErrBadQuery, seconds, maxProfileSeconds)
	}
	return nil
}

// profile writes this node's profile to w (gzipped protobuf, as go tool pprof reads it).
func profile(ctx context.Context, name string, seconds int, w io.Writer) error {
	if err := checkProfile(name, seconds); err != nil {
		return err
	}
	if name == "cpu" {
		if !cpuProfile.TryLock() {
			return ErrProfileBusy
		}
		defer cpuProfile.Unlock()
		if err := pprof.StartCPUProfile(w); err != nil {
			return fmt.Errorf("%w: %v", ErrProfileBusy, err)
		}
		t := time.NewTimer(time.Duration(seconds) * time.Second)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		pprof.StopCPUProfile()
		return ctx.Err()
	}
	if name == "mutex" {
		// Sample mutex contention while the profile runs, then restore the rate.
		prev := runtime.SetMutexProfileFraction(5)
		defer runtime.SetMutexProfileFraction(prev)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(seconds) * time.Second):
		}
	}
	p := pprof.Lookup(name)
	if p == nil {
		return fmt.Errorf("%w: no profile %q", ErrBadQuery, name)
	}
	return p.WriteTo(w, 0)
}

func (s *Service) servePprof(ctx context.Context, st *p2p.Stream) error {
	var req pprofRequest
	if err := st.ReadMsg(&req); err != nil {
		return err
	}
	var buf bytes.Buffer
	perr := profile(ctx, req.Profile, req.Seconds, &buf)
	status := pprofStatus{}
	if perr != nil {
		status.Err = perr.Error()
	}
	if err := st.WriteMsg(status); err != nil || perr != nil {
		return err
	}
	for data := buf.Bytes(); len(data) > 0; {
		n := min(len(data), pprofChunk)
		if err := st.WriteFrame(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// handlePprof is GET /v1/debug/pprof/{node}?profile=cpu&seconds=10 (admin only).
func (s *Service) handlePprof(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("profile")
	if name == "" {
		name = "cpu"
	}
	seconds := 10
	if v := r.URL.Query().Get("seconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			httpapi.WriteErr(w, fmt.Errorf("%w: seconds %q is not a whole number", ErrBadQuery, v))
			return
		}
		seconds = n
	}
	if err := checkProfile(name, seconds); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	id, nodeName, err := s.members.Resolve(r.PathValue("node"))
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", nodeName+"-"+name+".pb.gz"))
	if id == s.host.ID() {
		var buf bytes.Buffer
		if err := profile(r.Context(), name, seconds, &buf); err != nil {
			httpapi.WriteErr(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(buf.Bytes())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(seconds)*time.Second+30*time.Second)
	defer cancel()
	st, err := s.pprofSvc.Open(ctx, id)
	if err != nil {
		httpapi.WriteErr(w, fmt.Errorf("%w: node %s: %v", errUnavailable, nodeName, err))
		return
	}
	defer st.Close()
	if err := st.WriteMsg(pprofRequest{Profile: name, Seconds: seconds}); err != nil {
		st.Reset()
		httpapi.WriteErr(w, fmt.Errorf("%w: node %s: %v", errUnavailable, nodeName, err))
		return
	}
	_ = st.CloseWrite()
	var status pprofStatus
	if err := st.ReadMsg(&status); err != nil {
		httpapi.WriteErr(w, fmt.Errorf("%w: node %s: %v", errUnavailable, nodeName, err))
		return
	}
	if status.Err != "" {
		httpapi.WriteErr(w, fmt.Errorf("node %s: %s", nodeName, status.Err))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	for {
		b, err := st.ReadFrame()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			st.Reset()
			return // the answer started: the client sees a truncated body
		}
		if _, err := w.Write(b); err != nil {
			st.Reset()
			return
		}
	}
}
