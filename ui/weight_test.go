package ui

import "testing"

// pageWeightBudgetKB is the goal for everything the dashboard serves, gzipped.
const pageWeightBudgetKB = 300

func pageWeight(tb testing.TB) (raw, gz int, n int) {
	tb.Helper()
	files, err := NewAssetServer(Assets()).Files()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range files {
		raw += f.Bytes
		gz += f.GzipBytes
	}
	return raw, gz, len(files)
}

// TestPageWeightBudget: every embedded file together, as served gzipped, stays under the
// budget (a page loads at most all of them).
func TestPageWeightBudget(t *testing.T) {
	raw, gz, n := pageWeight(t)
	t.Logf("%d files: %.1f KB, %.1f KB gzipped", n, float64(raw)/1024, float64(gz)/1024)
	if gz > pageWeightBudgetKB*1024 {
		t.Errorf("the dashboard's files weigh %.1f KB gzipped; the budget is %d KB", float64(gz)/1024, pageWeightBudgetKB)
	}
}

// BenchmarkPageWeight reports the dashboard's weight (every embedded file) and times
// serving index.html gzipped.
func BenchmarkPageWeight(b *testing.B) {
	raw, gz, n := pageWeight(b)
	a := NewAssetServer(Assets())
	hdr := map[string]string{"Accept-Encoding": "gzip"}
	b.ResetTimer()
	for b.Loop() {
		if w := get(b, a, "/ui/", hdr); w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
	b.ReportMetric(float64(gz)/1024, "KB-gzip")
	b.ReportMetric(float64(raw)/1024, "KB-raw")
	b.ReportMetric(float64(n), "files")
}
