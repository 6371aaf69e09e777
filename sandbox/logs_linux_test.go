package sandbox

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// logFiles returns the sizes of a stream's files on disk.
func logFiles(t *testing.T, dir string, s Stream) (sizes []int64, total int64) {
	t.Helper()
	m, _ := filepath.Glob(logPath(dir, s) + "*")
	for _, p := range m {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, fi.Size())
		total += fi.Size()
	}
	return sizes, total
}

// checkSequence reads a stream (rotated files first) and checks it holds consecutive
// numbers ending with last; markers are skipped. It returns the number of lines.
func checkSequence(t *testing.T, rc io.Reader, last int, allowGaps bool) int {
	t.Helper()
	sc := bufio.NewScanner(rc)
	prev, n := -1, 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "[constellation: ") {
			continue
		}
		v, err := strconv.Atoi(line)
		if err != nil {
			t.Fatalf("line %d: %q is not a number (a line was cut or mixed)", n, line)
		}
		if prev >= 0 && v != prev+1 && !(allowGaps && v > prev) {
			t.Fatalf("line %d: %d follows %d: lines lost", n, v, prev)
		}
		prev = v
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if prev != last {
		t.Fatalf("last line %d; want %d", prev, last)
	}
	return n
}

// TestLogFloodBounded: 200 MB of output written as fast as possible stays within
// LogMaxBytes x LogFiles on disk, keeps the newest lines whole and in order, and the
// runtime's memory does not grow with it; reading the rotated logs streams.
func TestLogFloodBounded(t *testing.T) {
	const fileMax, files = 4 << 20, 3
	e := newTestRuntime(t, func(c *Config) { c.LogMaxBytes, c.LogFiles, c.LogRateBytes = fileMax, files, -1 })
	runtime.GC()
	rss0 := selfRSS()
	const last = 24000000 // seq 1 24000000: 200 MB
	ex := e.run(t, Spec{Name: "flood", Command: []string{"seq", "1", strconv.Itoa(last)}})
	if ex.Reason != ReasonExited || ex.Code != 0 {
		t.Fatalf("exit %+v", ex)
	}
	rss1 := selfRSS()
	in, _ := e.rt.get("flood")
	sizes, total := logFiles(t, in.st.Res.Dir, Stdout)
	t.Logf("200 MB flood: files %v (total %d B, limit %d x %d); runtime RSS %d -> %d KiB", sizes, total, fileMax, files, rss0>>10, rss1>>10)
	if len(sizes) != files || total > fileMax*files {
		t.Fatalf("on disk: %v = %d B; want %d files within %d B", sizes, total, files, fileMax*files)
	}
	for _, s := range sizes {
		if s > fileMax {
			t.Fatalf("a file of %d B is over LogMaxBytes %d", s, fileMax)
		}
	}
	if grew := rss1 - rss0; grew > 32<<20 {
		t.Fatalf("runtime RSS grew by %d MiB during the flood; want it bounded", grew>>20)
	}
	// Rotated read: streams all three files with little memory.
	rc, err := e.rt.Logs(context.Background(), "flood", LogOptions{Rotated: true})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32<<10)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	read, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf)
	runtime.ReadMemStats(&ms1)
	rc.Close()
	if err != nil || read != total {
		t.Fatalf("rotated read: %d B, %v; want %d B", read, err, total)
	}
	alloc := ms1.TotalAlloc - ms0.TotalAlloc
	t.Logf("rotated read: %d B, %d KiB allocated", read, alloc>>10)
	if alloc > 256<<10 {
		t.Fatalf("reading %d B of rotated logs allocated %d KiB; want it streamed", total, alloc>>10)
	}
	// The newest lines, whole and in order.
	rc, err = e.rt.Logs(context.Background(), "flood", LogOptions{Rotated: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	checkSequence(t, rc, last, false)
}

// TestLogRateLimit: output over LogRateBytes is dropped, counted and marked; what is
// kept are whole lines.
func TestLogRateLimit(t *testing.T) {
	e := newTestRuntime(t, func(c *Config) { c.LogRateBytes, c.LogBurstBytes = 256<<10, 256<<10 })
	const last = 2000000 // about 15 MB
	ex := e.run(t, Spec{Name: "chatty", Command: []string{"sh", "-c", "seq 1 " + strconv.Itoa(last) + "; sleep 1.2; echo " + strconv.Itoa(last+1)}})
	if ex.Code != 0 {
		t.Fatalf("exit %+v", ex)
	}
	st, _ := e.rt.Stats("chatty")
	out := e.logs(t, "chatty", Stdout)
	if st.LogDroppedBytes < 10<<20 || !strings.Contains(out, "bytes of stdout dropped: output over the limit of 262144 bytes/s]") {
		t.Fatalf("dropped %d B; log (%d B) has no marker", st.LogDroppedBytes, len(out))
	}
	if kept := len(out); kept > 2<<20 {
		t.Fatalf("kept %d B of 15 MB at 256 KiB/s; want about the burst", kept)
	}
	checkSequence(t, strings.NewReader(out), last+1, true)
	t.Logf("dropped %d B, kept %d B", st.LogDroppedBytes, len(out))
}

// TestLogsSurviveRuntimeRestart: output written while no runtime supervises waits in
// the pipe the init holds; the next runtime reads it: no line is lost.
func TestLogsSurviveRuntimeRestart(t *testing.T) {
	e := newTestRuntime(t, func(c *Config) { c.LogMaxBytes = 8 << 10 })
	const last = 3000
	spec := Spec{Name: "talk", Command: []string{"sh", "-c", "i=1; while [ $i -le " + strconv.Itoa(last) + " ]; do echo $i; i=$((i+1)); done; sleep 0.5"}}
	if _, err := e.rt.Create(spec); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Start("talk"); err != nil {
		t.Fatal(err)
	}
	e.rt.Close()
	time.Sleep(300 * time.Millisecond) // the program writes on, into the pipe
	rt2, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.rt = rt2
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if ex, err := rt2.Wait(ctx, "talk"); err != nil || ex.Code != 0 {
		t.Fatalf("Wait = %+v, %v", ex, err)
	}
	rc, err := rt2.Logs(ctx, "talk", LogOptions{Rotated: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Rotation at 8 KiB x 3 keeps the newest lines; they must be consecutive.
	if n := checkSequence(t, rc, last, false); n < 1000 {
		t.Fatalf("%d lines kept", n)
	}
}
