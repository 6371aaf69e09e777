package security

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
)

// Namespaces (collection "namespaces"): a record per namespace with its auto-delete time.
// Deleting one, or its expiry, writes a tombstone (Deleted) that stays; every node that
// sees it (at once, or when it comes back) removes what it holds of the namespace:
// its own instances created before the deletion, the namespace's deployments, secrets,
// bound tokens and quota. The cleanup is idempotent, so it runs on every node at every
// pass and still happens once. A create in a deleted namespace is refused.
const CollNamespaces = "namespaces"

// NamespaceRecord is a namespace as replicated.
type NamespaceRecord struct {
	Name            string `cbor:"1,keyasint"`
	Created         int64  `cbor:"2,keyasint"`
	CreatedBy       string `cbor:"3,keyasint,omitempty"`
	AutoDeleteAfter int64  `cbor:"4,keyasint,omitempty"` // ns
	Expires         int64  `cbor:"5,keyasint,omitempty"` // unix ns; 0 never
	Deleted         int64  `cbor:"6,keyasint,omitempty"` // unix ns: the tombstone
	DeletedBy       string `cbor:"7,keyasint,omitempty"`
	// DeletedBefore is the latest deletion ever (kept when the namespace is created
	// again): what was created before it is removed.
	DeletedBefore int64 `cbor:"8,keyasint,omitempty"`
}

// Workloads is what namespaces need of the node's workloads (node implements it with the
// instance service and the scheduler).
type Workloads interface {
	SetQuota(ns string, q api.QuotaSpec) error
	Quota(ns string) (api.QuotaInfo, bool)
	RemoveQuota(ns string)
	// RemoveNamespace removes this node's own instances of ns created before `before`,
	// and, when all is set, the namespace's deployments; it returns what it removed.
	RemoveNamespace(ctx context.Context, ns string, before time.Time, all bool) (int, error)
}

// SetWorkloads connects the workloads (before Start).
func (s *Service) SetWorkloads(w Workloads) { s.work = w }

// ErrNamespaceDeleted means a create named a deleted namespace.
var ErrNamespaceDeleted = errors.New("namespace deleted")

// ErrNamespaceNotFound means no namespace has the name.
var ErrNamespaceNotFound = errors.New("namespace not found")

func (s *Service) namespace(name string) (NamespaceRecord, bool) {
	b, ok := s.get(CollNamespaces, name)
	var r NamespaceRecord
	if !ok || state.Decode(b, &r) != nil || r.Name != name {
		return r, false
	}
	return r, true
}

// CheckNamespace refuses creates (instances, deployments, secrets, tokens) in a namespace
// that does not exist: never created (404 namespace_not_found) or deleted (409
// namespace_deleted). The implicit namespace "default" (or "") always exists. For
// backwards compatibility a namespace that has a quota record (set with 'constellation
// quota set' before namespaces existed) counts as existing; no namespace record is made
// for it.
//
// The check reads this node's replicated state as it is now. A create racing a delete on
// another node can pass here when this node has not yet received the tombstone (the
// window is the replication latency, typically well under a second): the instance is then
// created with a stamp before the tombstone reaches this node, and cleanNamespaces removes
// it as soon as the tombstone arrives (an instance created before DeletedBefore is removed,
// with its "removed" event on the bus), so the caller sees a create succeed and then the
// instance's removal event.
func (s *Service) CheckNamespace(ns string) error {
	if ns == "" || ns == api.DefaultNamespace {
		return nil
	}
	r, ok := s.namespace(ns)
	if ok && r.Deleted != 0 {
		return httpapi.Errorf(http.StatusConflict, "namespace_deleted", "%v: namespace %s was deleted at %s; nothing was created (create the namespace again with 'constellation namespace create %s')",
			ErrNamespaceDeleted, ns, time.Unix(0, r.Deleted).UTC().Format(time.RFC3339), ns)
	}
	if ok {
		return nil
	}
	if s.work != nil {
		if _, has := s.work.Quota(ns); has {
			return nil
		}
	}
	return httpapi.Errorf(http.StatusNotFound, "namespace_not_found", "%v: namespace %s does not exist; nothing was created (create it first with 'constellation namespace create %s', or use the namespace %s)",
		ErrNamespaceNotFound, ns, ns, api.DefaultNamespace)
}

// CreateNamespace creates a namespace (or brings a deleted one back) with its quota and
// auto-delete time.
func (s *Service) CreateNamespace(req api.NamespaceRequest, by string) (api.NamespaceInfo, error) {
	if !api.ValidNamespace(req.Name) {
		return api.NamespaceInfo{}, httpapi.BadRequest(`invalid field "name" %q: %s`, req.Name, api.NamespaceRule)
	}
	if req.Name == api.DefaultNamespace {
		return api.NamespaceInfo{}, httpapi.BadRequest("namespace %s always exists and cannot be created or deleted", api.DefaultNamespace)
	}
	var ttl time.Duration
	if req.AutoDeleteAfter != "" {
		d, err := time.ParseDuration(req.AutoDeleteAfter)
		if err != nil || d <= 0 {
			return api.NamespaceInfo{}, httpapi.BadRequest(`invalid field "auto_delete_after" %q: a positive duration such as 24h`, req.AutoDeleteAfter)
		}
		ttl = d
	}
	if old, ok := s.namespace(req.Name); ok && old.Deleted == 0 {
		return api.NamespaceInfo{}, httpapi.Errorf(http.StatusConflict, "exists", "namespace %s already exists ('constellation namespace show %s')", req.Name, req.Name)
	}
	if req.Quota != (api.QuotaSpec{}) && s.work != nil {
		if err := s.work.SetQuota(req.Name, req.Quota); err != nil {
			return api.NamespaceInfo{}, err
		}
	}
	now := s.cfg.Now()
	r := NamespaceRecord{Name: req.Name, Created: now.UnixNano(), CreatedBy: by, AutoDeleteAfter: int64(ttl)}
	if old, ok := s.namespace(req.Name); ok {
		r.DeletedBefore = max(old.DeletedBefore, old.Deleted)
	}
	if ttl > 0 {
		r.Expires = now.Add(ttl).UnixNano()
	}
	if err := s.put(CollNamespaces, r.Name, &r); err != nil {
		return api.NamespaceInfo{}, err
	}
	return nsInfo(r), nil
}

func nsInfo(r NamespaceRecord) api.NamespaceInfo {
	in := api.NamespaceInfo{Name: r.Name, Status: "active", Created: time.Unix(0, r.Created).UTC(), CreatedBy: r.CreatedBy}
	if r.AutoDeleteAfter != 0 {
		in.AutoDeleteAfter = time.Duration(r.AutoDeleteAfter).String()
	}
	if r.Expires != 0 {
		e := time.Unix(0, r.Expires).UTC()
		in.Expires = &e
	}
	if r.Deleted != 0 {
		d := time.Unix(0, r.Deleted).UTC()
		in.Deleted, in.DeletedBy, in.Status = &d, r.DeletedBy, "deleted"
	}
	return in
}

// Namespaces lists the namespaces (deleted ones included: their tombstones).
func (s *Service) Namespaces() []api.NamespaceInfo {
	var keys []string
	s.st.View(func(v *state.View) { keys = v.Keys(CollNamespaces) })
	sort.Strings(keys)
	out := []api.NamespaceInfo{}
	for _, k := range keys {
		if r, ok := s.namespace(k); ok {
			out = append(out, nsInfo(r))
		}
	}
	return out
}

// DeleteNamespace writes the namespace's tombstone; every node then removes what it
// holds of it (cleanNamespaces).
func (s *Service) DeleteNamespace(name, by string) (api.NamespaceInfo, error) {
	r, ok := s.namespace(name)
	if !ok {
		return api.NamespaceInfo{}, fmt.Errorf("%w: no namespace %q ('constellation namespace list')", ErrNamespaceNotFound, name)
	}
	if r.Deleted == 0 {
		r.Deleted, r.DeletedBy = s.cfg.Now().UnixNano(), by
		r.DeletedBefore = max(r.DeletedBefore, r.Deleted)
		if err := s.put(CollNamespaces, name, &r); err != nil {
			return api.NamespaceInfo{}, err
		}
	}
	s.kick()
	return nsInfo(r), nil
}

// kick wakes the namespace loop.
func (s *Service) kick() {
	select {
	case s.nsWake <- struct{}{}:
	default:
	}
}

// namespaceLoop expires namespaces and cleans deleted ones, every second and at once when
// the collection changes. It ends with the node's context.
func (s *Service) namespaceLoop() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.cleanNamespaces()
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.nsWake:
		}
	}
}

// cleanNamespaces is one pass: expire what is due (the tombstone carries the expiry time,
// so every node that expires it writes the same record), then remove local leftovers of
// every namespace deleted at some point.
func (s *Service) cleanNamespaces() {
	now := s.cfg.Now()
	var keys []string
	s.st.View(func(v *state.View) { keys = v.Keys(CollNamespaces) })
	for _, k := range keys {
		r, ok := s.namespace(k)
		if !ok {
			continue
		}
		if r.Deleted == 0 && r.Expires != 0 && now.UnixNano() >= r.Expires {
			r.Deleted, r.DeletedBy = r.Expires, "auto-delete"
			r.DeletedBefore = max(r.DeletedBefore, r.Deleted)
			if err := s.put(CollNamespaces, k, &r); err != nil {
				s.log.Warn("namespace expiry", "namespace", k, "err", err)
				continue
			}
			s.log.Info("namespace expired", "namespace", k)
		}
		if r.DeletedBefore == 0 {
			continue
		}
		s.cleanNamespace(r)
	}
}

// cleanNamespace removes this node's share of a deleted namespace's content.
func (s *Service) cleanNamespace(r NamespaceRecord) {
	before := time.Unix(0, r.DeletedBefore)
	gone := r.Deleted != 0
	if gone {
		// Nothing may live in a deleted namespace: what a create racing the deletion made
		// goes too, even when its node's clock is ahead of the deleter's.
		before = time.Unix(0, math.MaxInt64)
	}
	removed := 0
	if s.work != nil {
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		n, err := s.work.RemoveNamespace(ctx, r.Name, before, gone)
		cancel()
		removed += n
		if err != nil {
			s.log.Warn("namespace cleanup", "namespace", r.Name, "err", err)
		}
		if gone {
			s.work.RemoveQuota(r.Name)
		}
	}
	for _, sec := range s.Secrets(r.Name) {
		if sec.Updated.Before(before) || gone {
			if s.RemoveSecret(r.Name, sec.Name) == nil {
				removed++
			}
		}
	}
	for _, t := range s.Tokens() {
		if t.Namespace == r.Name && t.Revoked == 0 && t.Created < before.UnixNano() {
			if _, err := s.RevokeToken(t.ID, "namespace "+r.Name+" deleted"); err == nil {
				removed++
			}
		}
	}
	if removed > 0 {
		s.log.Info("namespace cleaned", "namespace", r.Name, "removed", removed)
	}
}
