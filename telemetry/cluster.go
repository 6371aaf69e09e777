package telemetry

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/p2p"
	"github.com/rads-lang/constellation/telemetry/tsdb"
)

// QueryProtocol is the cluster protocol a node's store is read over: one request frame
// (tsdb.Request), answered by tsdb.Batch frames until one has Done.
const QueryProtocol = "monitor-query/1.0.0"

// serveQuery answers one remote read from the local store.
func (s *Service) serveQuery(ctx context.Context, st *p2p.Stream) error {
	b, err := st.ReadFrame()
	if err != nil {
		return err
	}
	send := func(x tsdb.Batch) error {
		fb, err := tsdb.Encode(x)
		if err != nil {
			return err
		}
		return st.WriteFrame(fb)
	}
	req, ms, err := tsdb.DecodeRequest(b)
	if err != nil {
		return send(tsdb.Batch{Err: err.Error(), Done: true})
	}
	if s.store == nil {
		return send(tsdb.Batch{Err: ErrNoStore.Error(), Done: true})
	}
	q, err := s.store.Querier(req.Mint, req.Maxt)
	if err != nil {
		return send(tsdb.Batch{Err: err.Error(), Done: true})
	}
	defer q.Close()
	return tsdb.Serve(ctx, q, req, ms, send)
}

// clusterQueryable merges the local store (primary) with every other alive node's
// (secondaries: a node that fails or is late becomes a warning, not an error).
type clusterQueryable struct{ s *Service }

func (c *clusterQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	var prim []storage.Querier
	if c.s.store != nil {
		q, err := c.s.store.Querier(mint, maxt)
		if err != nil {
			return nil, err
		}
		prim = append(prim, q)
	}
	var sec []storage.Querier
	self := c.s.host.ID()
	for _, n := range c.s.members.Nodes() {
		// Suspect nodes are asked too: a slow node may still answer (else: a warning).
		if n.Self || (n.Status != api.StatusAlive && n.Status != api.StatusSuspect) {
			continue
		}
		id, err := peer.Decode(n.ID)
		if err != nil || id == self {
			continue
		}
		sec = append(sec, &remoteQuerier{s: c.s, id: id, name: n.Name, mint: mint, maxt: maxt})
	}
	if len(prim) == 0 && len(sec) == 0 {
		return nil, ErrNoStore
	}
	return storage.NewMergeQuerier(prim, sec, storage.ChainedSeriesMerge), nil
}

// remoteQuerier reads one other node's store over QueryProtocol.
type remoteQuerier struct {
	s          *Service
	id         peer.ID
	name       string
	mint, maxt int64
}

// call sends req and collects the answer, within the remote timeout.
func (r *remoteQuerier) call(ctx context.Context, req tsdb.Request) (*tsdb.Collector, error) {
	ctx, cancel := context.WithTimeout(ctx, r.s.cfg.RemoteTimeout)
	defer cancel()
	fail := func(err error) (*tsdb.Collector, error) {
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %s", r.s.cfg.RemoteTimeout)
		}
		return nil, fmt.Errorf("node %s left out of the result: %w", r.name, err)
	}
	b, err := tsdb.Encode(req)
	if err != nil {
		return nil, err
	}
	st, err := r.s.querySvc.Open(ctx, r.id)
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	if err := st.WriteFrame(b); err != nil {
		st.Reset()
		return fail(err)
	}
	if err := st.CloseWrite(); err != nil {
		st.Reset()
		return fail(err)
	}
	col := &tsdb.Collector{}
	for {
		fb, err := st.ReadFrame()
		if err != nil {
			st.Reset()
			return fail(err)
		}
		x, err := tsdb.DecodeBatch(fb)
		if err != nil {
			st.Reset()
			return fail(err)
		}
		if err := col.Add(x); err != nil {
			st.Reset()
			return fail(err)
		}
		if x.Done {
			return col, nil
		}
	}
}

func (r *remoteQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	col, err := r.call(ctx, tsdb.NewRequest(tsdb.OpSelect, r.mint, r.maxt, hints, ms))
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	return col.SeriesSet()
}

func (r *remoteQuerier) names(ctx context.Context, req tsdb.Request) ([]string, annotations.Annotations, error) {
	col, err := r.call(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var ws annotations.Annotations
	for _, w := range col.Warnings {
		ws.Add(errors.New(w))
	}
	return col.Names, ws, nil
}

func (r *remoteQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := tsdb.NewRequest(tsdb.OpLabelValues, r.mint, r.maxt, nil, ms)
	req.Name = name
	if hints != nil {
		req.Limit = hints.Limit
	}
	return r.names(ctx, req)
}

func (r *remoteQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := tsdb.NewRequest(tsdb.OpLabelNames, r.mint, r.maxt, nil, ms)
	if hints != nil {
		req.Limit = hints.Limit
	}
	return r.names(ctx, req)
}

func (r *remoteQuerier) Close() error { return nil }
