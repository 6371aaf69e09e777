package balance

import "time"

// ejection is the outlier-detection state of one endpoint.
type ejection struct {
	consec  int // consecutive failures
	ejected bool
	until   time.Time
	times   int       // ejection multiplier
	lastEnd time.Time // when the latest ejection ended (for the decay of times)
}

// active reports whether the endpoint is ejected at now, ending an expired
// ejection (changed is then true).
func (e *ejection) active(now time.Time) (on bool, changed bool) {
	if !e.ejected {
		return false, false
	}
	if now.Before(e.until) {
		return true, false
	}
	e.ejected = false
	e.lastEnd = e.until
	return false, true
}

// record counts the outcome and reports whether the failure streak asks for
// an ejection (the caller checks the cap and calls eject).
func (e *ejection) record(o Outcome, cfg *OutlierConfig) (wantEject bool) {
	if cfg.Disabled || o == Canceled {
		return false
	}
	if !o.IsFailure() {
		e.consec = 0
		return false
	}
	e.consec++
	return !e.ejected && e.consec >= cfg.Consecutive
}

func (e *ejection) eject(now time.Time, cfg *OutlierConfig) {
	if e.times > 0 && !e.lastEnd.IsZero() && cfg.BaseEjectionTime > 0 {
		healthy := int(now.Sub(e.lastEnd) / cfg.BaseEjectionTime)
		e.times = max(0, e.times-healthy)
	}
	e.times++
	d := time.Duration(e.times) * cfg.BaseEjectionTime
	if d > cfg.MaxEjectionTime || d < 0 {
		d = cfg.MaxEjectionTime
	}
	e.ejected = true
	e.until = now.Add(d)
	e.consec = 0
}

// maxEjected is the number of endpoints out of n that may be ejected at once.
func maxEjected(n int, cfg *OutlierConfig) int {
	m := n * cfg.MaxEjectionPercent / 100
	if m == 0 && n >= 2 && cfg.MaxEjectionPercent > 0 {
		m = 1
	}
	return m
}
