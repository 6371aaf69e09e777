package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// An exec health check is written "exec:CMD ARGS" in a registration's health_check. The
// hosting node runs CMD directly (no shell: the words are split on white space, with no
// quoting or expansion) with a clean environment, in its own process group, killed with
// that group at the health check timeout. Exit status 0 passes. Instances have no facility
// to run a command inside them, so the command runs on the node, as the node's user,
// whether the endpoint has an instance or not.

const (
	execPrefix   = "exec:"
	execMaxLen   = 1024
	execMaxArgs  = 64
	execMaxOut   = 4 << 10 // output kept for the reason
	execPath     = "/usr/local/bin:/usr/bin:/bin"
	execWaitKill = 2 * time.Second // after the kill, how long to wait for pipes to close
)

// isExecCheck reports whether a health check is an exec check.
func isExecCheck(hc string) bool { return strings.HasPrefix(hc, execPrefix) }

// parseExecCheck splits an exec health check into its argv; errors name what is wrong.
func parseExecCheck(hc string) ([]string, error) {
	if len(hc) > execMaxLen {
		return nil, fmt.Errorf("%d bytes, at most %d", len(hc), execMaxLen)
	}
	if strings.ContainsAny(hc, "\x00\r\n") {
		return nil, errors.New("NUL or line breaks in the command")
	}
	argv := strings.Fields(strings.TrimPrefix(hc, execPrefix))
	if len(argv) == 0 {
		return nil, errors.New("no command after \"exec:\" (want exec:CMD ARGS, e.g. exec:/usr/bin/pg_isready -q)")
	}
	if len(argv) > execMaxArgs {
		return nil, fmt.Errorf("%d words, at most %d", len(argv), execMaxArgs)
	}
	if !filepath.IsAbs(argv[0]) && strings.Contains(argv[0], "/") {
		return nil, fmt.Errorf("command %q: an absolute path or a name found in %s", argv[0], execPath)
	}
	return argv, nil
}

// lookExec finds argv[0] in execPath when it is not absolute (the node's own PATH is not used).
func lookExec(name string) (string, error) {
	if filepath.IsAbs(name) {
		return name, nil
	}
	for _, dir := range filepath.SplitList(execPath) {
		p := filepath.Join(dir, name)
		if isExecutableFile(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in %s", name, execPath)
}

// boundedBuffer keeps the first n bytes written and discards the rest.
type boundedBuffer struct {
	buf bytes.Buffer
	n   int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.n - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// execCheck runs one exec check of endpoint e under ctx (which carries the timeout).
func execCheck(ctx context.Context, e Endpoint) (bool, string) {
	argv, err := parseExecCheck(e.Rec.HealthCheck)
	if err != nil {
		return false, "exec: " + err.Error()
	}
	path, err := lookExec(argv[0])
	if err != nil {
		return false, "exec: " + err.Error()
	}
	cmd := exec.CommandContext(ctx, path, argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + execPath, "LANG=C",
		"CONSTELLATION_ENDPOINT=" + e.Addr(),
		"CONSTELLATION_ENDPOINT_HOST=" + e.Rec.Host,
		"CONSTELLATION_ENDPOINT_PORT=" + strconv.Itoa(e.Rec.Port),
		"CONSTELLATION_SERVICE=" + e.Rec.Service,
		"CONSTELLATION_INSTANCE=" + e.Rec.Instance}
	out := &boundedBuffer{n: execMaxOut}
	cmd.Stdout, cmd.Stderr = out, out
	setProcessGroup(cmd)
	cmd.WaitDelay = execWaitKill
	err = cmd.Run()
	if err == nil {
		return true, ""
	}
	if ctx.Err() == context.DeadlineExceeded {
		return false, "exec " + argv[0] + ": killed at the health check timeout"
	}
	why := "exec " + argv[0] + ": " + shortErr(err)
	if line := firstLine(out.buf.String()); line != "" {
		why += ": " + line
	}
	return false, why
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.ToValidUTF8(s, "?")
}

// errExecOff refuses an exec check on a node that does not allow them.
func errExecOff(node string) error {
	return bad("field \"health_check\": exec checks are off on node %s (they run a command on the node as its user; start the node with --mesh-exec-checks to allow them)", node)
}
