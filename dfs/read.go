package dfs

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/state"
)

// Open reads a file (or a conflict copy); version 0 is the current one, else one of the
// kept versions. Blocks come from the local store, else from the holders (the pin
// records, then the holders chosen at the write).
func (s *Service) Open(ctx context.Context, name string, version uint64) (io.ReadSeekCloser, api.FSEntry, error) {
	if err := CheckPath(name); err != nil {
		return nil, api.FSEntry{}, err
	}
	var (
		x     visName
		found bool
		v     Version
	)
	s.st.View(func(vw *state.View) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var es []EntryRecord
		x, es, found = s.lookup(vw, name)
		if found {
			v = x.cur
			if version != 0 && version != x.cur.Number {
				found = false
				w, _ := Resolve(es, policyOf(s.treeOf(vw, x.path)))
				if w >= 0 {
					v, found = findVersion(es[w], version)
				}
			}
		} else if version != 0 && len(es) > 0 { // a deleted path's kept versions
			w, _ := Resolve(es, policyOf(s.treeOf(vw, name)))
			if w >= 0 {
				v, found = findVersion(es[w], version)
			}
		}
	})
	if version == 0 && s.isStrong(name) { // the latest committed version (linearizable)
		c, err := s.strongGet(ctx, name)
		if err != nil {
			return nil, api.FSEntry{}, err
		}
		v, found = c.live()
		x = visName{path: name, cur: v}
	}
	if !found || v.Deleted {
		if version != 0 {
			return nil, api.FSEntry{}, fmt.Errorf("%w: %s has no version %d (see fs versions %s)", ErrNotFound, name, version, name)
		}
		return nil, api.FSEntry{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	root, err := cid.Decode(v.CID)
	if err != nil {
		return nil, api.FSEntry{}, fmt.Errorf("dfs: %s has a bad CID %q: %v", name, v.CID, err)
	}
	f, err := s.content.Open(s.cacheCtx(ctx, name), root, s.holdersOf(v))
	if err != nil {
		return nil, api.FSEntry{}, fmt.Errorf("dfs: read %s: %w", name, err)
	}
	s.met.reads.Inc()
	return f, s.entryAPI(visName{path: name, cur: v, conflict: x.conflict}), nil
}

// holdersOf are the nodes to fetch a version's blocks from: alive pin holders first,
// then the holders chosen at the write; never this node.
func (s *Service) holdersOf(v Version) []peer.ID {
	alive := map[string]bool{}
	for _, n := range s.members.Nodes() {
		alive[n.ID] = n.Status == api.StatusAlive
	}
	var out []peer.ID
	seen := map[string]bool{s.self: true}
	for _, h := range append(s.pinHolders(v.CID), v.Holders...) {
		if !seen[h] && alive[h] {
			seen[h] = true
			if id, err := peer.Decode(h); err == nil {
				out = append(out, id)
			}
		}
	}
	return out
}

// pinHolders are the nodes with a pin record of root.
func (s *Service) pinHolders(root string) []string {
	var out []string
	s.st.View(func(v *state.View) {
		for _, k := range v.Keys(CollPins) {
			if i := strings.IndexByte(k, 0); i > 0 && k[i+1:] == root {
				out = append(out, k[:i])
			}
		}
	})
	sort.Strings(out)
	return out
}

// Stat describes a file: its entry, where its copies are and whether this node holds or
// caches it.
func (s *Service) Stat(ctx context.Context, name string) (api.FSStat, error) {
	if err := CheckPath(name); err != nil {
		return api.FSStat{}, err
	}
	var (
		x     visName
		found bool
		tree  TreeRecord
	)
	s.st.View(func(v *state.View) {
		s.mu.Lock()
		x, _, found = s.lookup(v, name)
		s.mu.Unlock()
		tree = s.treeOf(v, name)
	})
	if tree.Consistency == Strong { // the latest committed version (linearizable)
		c, err := s.strongGet(ctx, name)
		if err != nil {
			return api.FSStat{}, err
		}
		var v Version
		v, found = c.live()
		x = visName{path: name, cur: v}
	}
	if !found {
		return api.FSStat{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	st := api.FSStat{FSEntry: s.entryAPI(x), Copies: []api.FSCopy{}, Tree: treeAPI(tree)}
	nodes := map[string]api.NodeInfo{}
	for _, n := range s.members.Nodes() {
		nodes[n.ID] = n
	}
	for _, h := range s.pinHolders(x.cur.CID) {
		n := nodes[h]
		name := n.Name
		if name == "" {
			name = h
		}
		st.Copies = append(st.Copies, api.FSCopy{Node: name, ID: h, Status: n.Status})
		if h == s.self {
			st.PinnedHere = true
		}
	}
	if root, err := cid.Decode(x.cur.CID); err == nil && !st.PinnedHere {
		st.CachedHere, _ = s.content.Has(ctx, root)
	}
	return st, nil
}

func treeAPI(t TreeRecord) api.FSTree {
	return api.FSTree{Prefix: t.Prefix, Replication: t.Replication, Consistency: t.Consistency,
		CacheMB: t.CacheMB, Versions: t.Versions, Conflict: t.Conflict, Ack: t.Ack}
}

// List lists the files under a prefix: with recursive every file below it, else its
// direct children (subdirectories shown as entries whose path ends in "/"). A prefix
// naming a file lists that file.
func (s *Service) List(prefix string, recursive bool) ([]api.FSEntry, error) {
	p, err := CleanPrefix(prefix)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	files := s.filesLocked(p)
	s.mu.Unlock()
	out := []api.FSEntry{}
	dirs := map[string]*api.FSEntry{}
	for _, x := range files {
		if recursive || x.path == p || Dir(x.path) == p {
			out = append(out, s.entryAPI(x))
			continue
		}
		rest := strings.TrimPrefix(x.path, p)
		if p == "/" {
			rest = x.path
		}
		d := p + "/" + strings.SplitN(strings.TrimPrefix(rest, "/"), "/", 2)[0] + "/"
		if p == "/" {
			d = "/" + strings.SplitN(strings.TrimPrefix(rest, "/"), "/", 2)[0] + "/"
		}
		e := dirs[d]
		if e == nil {
			e = &api.FSEntry{Path: d}
			dirs[d] = e
		}
		e.Size += x.cur.Size
		if t := time.Unix(0, x.cur.MTime).UTC(); t.After(e.MTime) {
			e.MTime = t
		}
	}
	for _, d := range dirs {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Versions lists the kept versions of a path, newest first (also of a deleted path).
func (s *Service) Versions(path string) ([]api.FSVersion, error) {
	if err := CheckPath(path); err != nil {
		return nil, err
	}
	var out []api.FSVersion
	s.st.View(func(v *state.View) {
		s.mu.Lock()
		defer s.mu.Unlock()
		st := s.idx[path]
		if st == nil {
			return
		}
		es := readEntries(v, path, st.writers)
		w, _ := Resolve(es, policyOf(s.treeOf(v, path)))
		if w < 0 {
			return
		}
		for i, x := range append([]Version{es[w].Cur}, es[w].History...) {
			out = append(out, api.FSVersion{Version: x.Number, CID: x.CID, Size: x.Size,
				MTime: time.Unix(0, x.MTime).UTC(), Writer: x.Writer, Deleted: x.Deleted, Current: i == 0 && !x.Deleted})
		}
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	return out, nil
}

// Du sums the files under a prefix and, with byNode, what each node holds of them.
func (s *Service) Du(prefix string, byNode bool) (api.FSDu, error) {
	p, err := CleanPrefix(prefix)
	if err != nil {
		return api.FSDu{}, err
	}
	s.mu.Lock()
	files := s.filesLocked(p)
	s.mu.Unlock()
	du := api.FSDu{Prefix: p}
	per := map[string]*api.FSDuNode{}
	for _, x := range files {
		du.Files++
		du.Bytes += x.cur.Size
		if !byNode {
			continue
		}
		for _, h := range s.pinHolders(x.cur.CID) {
			n := per[h]
			if n == nil {
				n = &api.FSDuNode{Node: s.nameOf(h), ID: h}
				per[h] = n
			}
			n.Files++
			n.Bytes += x.cur.Size
		}
	}
	for _, n := range per {
		du.ByNode = append(du.ByNode, *n)
	}
	sort.Slice(du.ByNode, func(i, j int) bool { return du.ByNode[i].Node < du.ByNode[j].Node })
	return du, nil
}
