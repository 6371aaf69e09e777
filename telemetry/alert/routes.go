package alert

import (
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/rads-lang/constellation/api"
	"github.com/rads-lang/constellation/internal/httpapi"
	"github.com/rads-lang/constellation/internal/state"
)

func init() {
	httpapi.Classify(http.StatusNotFound, "not_found", ErrRuleNotFound, ErrSilenceNotFound, ErrChannelNotFound)
	httpapi.Classify(http.StatusBadRequest, "bad_request", ErrInvalid)
}

// registerRoutes adds the alerting API (reads: GET; everything else mutates).
func (s *Service) registerRoutes(route func(string, http.HandlerFunc)) {
	route("GET /v1/monitor/rules", s.handleRules)
	route("POST /v1/monitor/rules", s.handleAddRule)
	route("GET /v1/monitor/rules/{name}", s.handleRule)
	route("DELETE /v1/monitor/rules/{name}", s.handleRemoveRule)
	route("GET /v1/monitor/alerts", s.handleAlerts)
	route("GET /v1/monitor/silences", s.handleSilences)
	route("POST /v1/monitor/silences", s.handleAddSilence)
	route("DELETE /v1/monitor/silences/{id}", s.handleRemoveSilence)
	route("GET /v1/monitor/channels", s.handleChannels)
	route("POST /v1/monitor/channels", s.handleAddChannel)
	route("DELETE /v1/monitor/channels/{name}", s.handleRemoveChannel)
	route("POST /v1/monitor/channels/{name}/test", s.handleTestChannel)
	route("GET /v1/monitor/channels/{name}/history", s.handleHistory)
}

// AddRule validates and stores a rule (create or replace; a replaced rule keeps its
// creation time and its alerts).
func (s *Service) AddRule(spec api.AlertRuleSpec) (api.AlertRuleInfo, error) {
	r, err := RuleFromSpec(spec, s.now(), s.cfg.Name)
	if err != nil {
		return api.AlertRuleInfo{}, err
	}
	if old, ok := readOne[RuleRecord](s.st, CollRules, r.Name); ok && old.Name == r.Name {
		r.CreatedAt = old.CreatedAt
	}
	if _, err := state.Encode(r); err != nil {
		return api.AlertRuleInfo{}, invalidf("rule %q is too large to replicate: %v", r.Name, err)
	}
	if err := s.st.Update(func(tx *state.Tx) error { return put(tx, CollRules, r.Name, r) }); err != nil {
		return api.AlertRuleInfo{}, err
	}
	s.kick()
	return s.ruleInfo(r, s.aliveNames()), nil
}

func (s *Service) ruleInfo(r RuleRecord, alive []string) api.AlertRuleInfo {
	info := r.Info()
	info.Owner = Owner(r.Name, alive)
	if st, ok := readOne[StateRecord](s.st, CollState, r.Name); ok {
		info.EvaluatedAt, info.LastError = st.EvaluatedAt, st.LastError
		for _, a := range st.Alerts {
			switch a.State {
			case api.AlertPending:
				info.Pending++
			case api.AlertFiring:
				info.Firing++
			}
		}
	}
	return info
}

func (s *Service) handleAddRule(w http.ResponseWriter, r *http.Request) {
	var spec api.AlertRuleSpec
	if !httpapi.Decode(w, r, &spec) {
		return
	}
	info, err := s.AddRule(spec)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, info)
}

func (s *Service) handleRules(w http.ResponseWriter, _ *http.Request) {
	alive := s.aliveNames()
	out := []api.AlertRuleInfo{}
	for _, r := range s.rules() {
		out = append(out, s.ruleInfo(r, alive))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) handleRule(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rec, ok := readOne[RuleRecord](s.st, CollRules, name)
	if !ok || rec.Name != name {
		httpapi.WriteErr(w, errors.Join(ErrRuleNotFound, errors.New("no alert rule "+name+" (monitor alert list shows them)")))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, s.ruleInfo(rec, s.aliveNames()))
}

// removeKeys removes a record and others in one delta; missing is returned when the first
// key is absent.
func (s *Service) removeKeys(missing error, coll, key string, also func(tx *state.Tx) error) error {
	return s.st.Update(func(tx *state.Tx) error {
		if !tx.Has(coll, key) {
			return missing
		}
		if err := tx.Remove(coll, key); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
}

func (s *Service) handleRemoveRule(w http.ResponseWriter, r *http.Request) {
	if err := s.RemoveRule(r.PathValue("name")); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// RemoveRule removes a rule and its alerts. Its firing alerts that were notified get their
// resolution, sent once by this node (the one that removed the rule).
func (s *Service) RemoveRule(name string) error {
	var rule RuleRecord
	var st StateRecord
	err := s.st.Update(func(tx *state.Tx) error {
		b, _, ok := tx.GetLWW(CollRules, name)
		if !ok {
			return ErrRuleNotFound
		}
		_ = state.Decode(b, &rule)
		if err := tx.Remove(CollRules, name); err != nil {
			return err
		}
		if b, _, ok := tx.GetLWW(CollState, name); ok {
			_ = state.Decode(b, &st)
			return tx.Remove(CollState, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	now := s.now()
	for _, a := range st.Alerts {
		if a.State == api.AlertFiring && !a.NotifiedAt.IsZero() {
			a.State, a.ResolvedAt, a.ResolvedSent = api.AlertResolved, now, true
			s.notify(Notification{Rule: name, Channels: rule.Channels, Status: api.AlertResolved, Alert: a}, time.Time{})
		}
	}
	s.kick()
	return nil
}

// Alerts lists the alerts of every rule: pending and firing, resolved ones too when all.
func (s *Service) Alerts(all bool) []api.AlertInfo {
	alive := s.aliveNames()
	rules := s.rules()
	out := []api.AlertInfo{}
	for name, st := range readColl[StateRecord](s.st, CollState) {
		if _, ok := rules[name]; !ok || st.Rule != name {
			continue
		}
		owner := Owner(name, alive)
		for _, a := range st.Alerts {
			if all || a.State != api.AlertResolved {
				out = append(out, alertInfo(name, owner, a))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Rule != out[j].Rule {
			return out[i].Rule < out[j].Rule
		}
		return out[i].Fingerprint < out[j].Fingerprint
	})
	return out
}

func (s *Service) handleAlerts(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, s.Alerts(r.URL.Query().Get("all") != ""))
}

// AddSilence stores a silence.
func (s *Service) AddSilence(spec api.SilenceSpec) (api.SilenceInfo, error) {
	now := s.now()
	rec, err := SilenceFromSpec(spec, now, s.cfg.Name)
	if err != nil {
		return api.SilenceInfo{}, err
	}
	if err := s.st.Update(func(tx *state.Tx) error { return put(tx, CollSilences, rec.ID, rec) }); err != nil {
		return api.SilenceInfo{}, err
	}
	s.kick()
	return rec.Info(now), nil
}

func (s *Service) handleAddSilence(w http.ResponseWriter, r *http.Request) {
	var spec api.SilenceSpec
	if !httpapi.Decode(w, r, &spec) {
		return
	}
	info, err := s.AddSilence(spec)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, info)
}

func (s *Service) handleSilences(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	all := r.URL.Query().Get("all") != ""
	out := []api.SilenceInfo{}
	for _, x := range s.silences() {
		if all || x.Active(now) || now.Before(x.StartsAt) {
			out = append(out, x.Info(now))
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) handleRemoveSilence(w http.ResponseWriter, r *http.Request) {
	if err := s.removeKeys(ErrSilenceNotFound, CollSilences, r.PathValue("id"), nil); err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	s.kick()
	w.WriteHeader(http.StatusNoContent)
}

// AddChannel validates and stores a channel (create or replace).
func (s *Service) AddChannel(spec api.ChannelSpec) (api.ChannelInfo, error) {
	rec, err := ChannelFromSpec(spec, s.now())
	if err != nil {
		return api.ChannelInfo{}, err
	}
	if rec, err = rec.seal(s.cfg.Sealer); err != nil {
		return api.ChannelInfo{}, err
	}
	if err := s.st.Update(func(tx *state.Tx) error { return put(tx, CollChannels, rec.Name, rec) }); err != nil {
		return api.ChannelInfo{}, err
	}
	return rec.Info(), nil
}

func (s *Service) handleAddChannel(w http.ResponseWriter, r *http.Request) {
	var spec api.ChannelSpec
	if !httpapi.Decode(w, r, &spec) {
		return
	}
	info, err := s.AddChannel(spec)
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, info)
}

func (s *Service) handleChannels(w http.ResponseWriter, _ *http.Request) {
	out := []api.ChannelInfo{}
	for k, c := range readColl[ChannelRecord](s.st, CollChannels) {
		if c.Name == k {
			out = append(out, c.Info())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) handleRemoveChannel(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := s.removeKeys(ErrChannelNotFound, CollChannels, name, func(tx *state.Tx) error {
		for _, k := range tx.Keys(CollHistory) {
			if isHistoryOf(k, name) {
				if err := tx.Remove(CollHistory, k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleTestChannel(w http.ResponseWriter, r *http.Request) {
	res, err := s.TestChannel(r.Context(), r.PathValue("name"))
	if err != nil {
		httpapi.WriteErr(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

func (s *Service) handleHistory(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var ok bool
	s.st.View(func(v *state.View) { ok = v.Has(CollChannels, name) })
	if !ok {
		httpapi.WriteErr(w, ErrChannelNotFound)
		return
	}
	out := s.History(name)
	if out == nil {
		out = []api.ChannelAttempt{}
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}
