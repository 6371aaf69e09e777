package alert

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// EngineQuerier is a Querier over a PromQL engine and a storage.Queryable (a node's TSDB,
// or a fan-out Queryable over the cluster).
type EngineQuerier struct {
	Engine    *promql.Engine
	Queryable storage.Queryable
}

// Instant implements Querier.
func (e EngineQuerier) Instant(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	q, err := e.Engine.NewInstantQuery(ctx, e.Queryable, nil, expr, ts)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return v, nil
	case promql.Scalar:
		return promql.Vector{promql.Sample{T: v.T, F: v.V}}, nil
	default:
		return nil, fmt.Errorf("expression %q returns a %s, not an instant vector", expr, res.Value.Type())
	}
}

// Range implements Querier.
func (e EngineQuerier) Range(ctx context.Context, expr string, start, end time.Time, step time.Duration) (promql.Matrix, error) {
	q, err := e.Engine.NewRangeQuery(ctx, e.Queryable, nil, expr, start, end, step)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	m, err := res.Matrix()
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", expr, err)
	}
	return m, nil
}
