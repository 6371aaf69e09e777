package instances

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/membership"
)

// listColls are the collections GET /v1/instances derives from (records, and the node
// statuses membership judges): a blocking read waits for a change in them.
var listColls = []string{Coll, membership.Coll}

// instanceStatuses are the statuses ?status= accepts.
var instanceStatuses = []string{api.InstanceCreated, api.InstanceStarting, api.InstanceRunning, api.InstanceStopped,
	api.InstanceExited, api.InstanceFailed, api.InstanceOOMKilled}

// listQuery is a parsed GET /v1/instances query.
type listQuery struct {
	status    []string // any of these (empty: all)
	node      string   // name or peer ID
	namespace string
	limit     int // 0: no limit
	after     string
}

// parseListQuery reads the filters and the page; bad values are 400s naming the parameter
// and the accepted form.
func parseListQuery(q url.Values) (listQuery, error) {
	var lq listQuery
	if s := q.Get("status"); s != "" {
		for _, x := range strings.Split(s, ",") {
			if !slices.Contains(instanceStatuses, x) {
				return lq, httpapi.BadRequest("invalid status %q: one or more of %s, comma-separated", x, strings.Join(instanceStatuses, ", "))
			}
			lq.status = append(lq.status, x)
		}
	}
	lq.node = q.Get("node")
	if ns := q.Get("namespace"); ns != "" {
		if !api.ValidNamespace(ns) {
			return lq, httpapi.BadRequest("invalid namespace %q: %s", ns, api.NamespaceRule)
		}
		lq.namespace = ns
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return lq, httpapi.BadRequest("invalid limit %q: a positive number of instances per page, e.g. limit=100", s)
		}
		lq.limit = n
	}
	if s := q.Get("after"); s != "" {
		if !instanceNameRE.MatchString(s) {
			return lq, httpapi.BadRequest("invalid after %q: an instance name (the %s value of the previous page)", s, api.NextHeader)
		}
		lq.after = s
	}
	return lq, nil
}

// match reports whether r passes the filters.
func (lq listQuery) match(r Record) bool {
	return (len(lq.status) == 0 || slices.Contains(lq.status, r.Status)) &&
		(lq.node == "" || r.Node == lq.node || r.NodeID == lq.node) &&
		(lq.namespace == "" || r.namespace() == lq.namespace)
}

// page filters rs (in natural name order) and cuts the page: the records after lq.after,
// at most lq.limit of them; next is the last name of the page when more follow.
func (lq listQuery) page(rs []Record) (out []Record, next string) {
	out = []Record{}
	for _, r := range rs {
		if lq.after != "" && naturalCompare(r.Name, lq.after) <= 0 || !lq.match(r) {
			continue
		}
		if lq.limit > 0 && len(out) == lq.limit {
			return out, out[len(out)-1].Name
		}
		out = append(out, r)
	}
	return out, ""
}

// knownNode reports whether nameOrID is a member or named by some instance record (of a
// node that has gone from membership).
func (m *Service) knownNode(nameOrID string, rs []Record) bool {
	for _, x := range m.members.Nodes() {
		if x.Name == nameOrID || x.ID == nameOrID {
			return true
		}
	}
	return slices.ContainsFunc(rs, func(r Record) bool { return r.Node == nameOrID || r.NodeID == nameOrID })
}

// handleList serves GET /v1/instances: every instance in the cluster in natural name order
// (web-2 before web-10), filtered by ?status=a,b, ?node=NAME|ID and ?namespace=NS, paged
// by ?limit=N&after=NAME (api.NextHeader names the next page's after), and a blocking read
// with ?index=N&wait=D.
func (m *Service) handleList(w http.ResponseWriter, r *http.Request) {
	lq, err := parseListQuery(r.URL.Query())
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	if !httpapi.Block(w, r, m.st, listColls...) {
		return
	}
	all := m.List()
	if c, ok := callerOf(r.Context()); ok {
		all = slices.DeleteFunc(all, func(x Record) bool { return !visibleTo(c, x) })
	}
	if lq.node != "" && !m.knownNode(lq.node, all) {
		httpapi.WriteErr(w, httpapi.Errorf(http.StatusNotFound, "not_found", "no node %q in the cluster as node %s knows it; 'constellation nodes' lists them", lq.node, m.cfg.Name))
		return
	}
	rs, next := lq.page(all)
	if next != "" {
		w.Header().Set(api.NextHeader, next)
	}
	infos := make([]api.Instance, len(rs))
	for i, x := range rs {
		infos[i] = infoFor(r.Context(), x)
	}
	httpapi.WriteJSON(w, http.StatusOK, infos)
}

// naturalCompare orders names with their digit runs compared as numbers: ft-2 < ft-10,
// a9 < a10 < b1. Equal numbers with different zero padding order by length, then
// bytewise, so the order is total.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := len(na) - len(nb); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			if c := da - db; c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitPrefix(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
