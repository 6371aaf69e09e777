package balance

import "time"

// budget is the retry budget: over the sliding window, retries may not exceed
// MinPerSecond*window + Ratio*requests.
type budget struct {
	r   ring // a: requests, b: retries
	cfg *BudgetConfig
}

func newBudget(cfg *BudgetConfig) budget { return budget{r: newRing(cfg.Window), cfg: cfg} }

func (b *budget) request(now time.Time) { b.r.add(now, 1, 0) }

// allowance is the number of retries still allowed at now.
func (b *budget) allowance(now time.Time) float64 {
	reqs, retries := b.r.sums(now)
	return b.cfg.MinPerSecond*b.cfg.Window.Seconds() + b.cfg.Ratio*float64(reqs) - float64(retries)
}

// withdraw takes one retry from the budget when allowed.
func (b *budget) withdraw(now time.Time) bool {
	if b.allowance(now) < 1 {
		return false
	}
	b.r.add(now, 0, 1)
	return true
}
