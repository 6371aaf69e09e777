package main

import (
	"bytes"
	"strings"
	"testing"
)

// runCLI runs the command tree in-process (no binary, no node) and returns its error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestInstanceCLIBadInput: argument errors are caught before any request, and say what
// would be right.
func TestInstanceCLIBadInput(t *testing.T) {
	dir := t.TempDir() // no node runs here: a request would fail with "no running node"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "--", "sleep", "1"}, "--name is required"},
		{[]string{"create", "--name", "web"}, "nothing to run"},
		{[]string{"create", "--name", "web", "--script", dir + "/missing.rads"}, "--code DIR"},
		{[]string{"create", "--name", "web", "--script", "x.rads", "--", "sleep", "1"}, "not both"},
		{[]string{"create", "--name", "web", "--env", "NOEQUALS", "--", "true"}, "KEY=VALUE"},
		{[]string{"create", "--name", "web", "--restart", "sometimes", "--", "true"}, "on-failure:N"},
		{[]string{"create", "--name", "web", "--ram-mb", "lots", "--", "true"}, "invalid argument"},
		{[]string{"set-limits", "web"}, "at least one of"},
		{[]string{"snapshot", "web"}, "exactly one of --save TAG, --restore TAG, --list or --delete TAG"},
		{[]string{"snapshot", "web", "--save", "a", "--restore", "b"}, "exactly one"},
		{[]string{"logs", "web", "--stream", "both"}, "stdout, stderr or all"},
		{[]string{"stats"}, "instance NAME"},
		{[]string{"rm"}, "requires at least 1 arg"},
		{[]string{"list", "--data-dir", dir}, "no running node"},
		{[]string{"create", "--name", "web", "--data-dir", dir, "--", "true"}, "no running node"},
	} {
		_, err := runCLI(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("constellation %s: err = %v; want it to contain %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

func TestParseEnv(t *testing.T) {
	env, err := parseEnv([]string{"A=1", "B=x=y", "C="})
	if err != nil || env["A"] != "1" || env["B"] != "x=y" || env["C"] != "" || len(env) != 3 {
		t.Errorf("parseEnv = %v, %v", env, err)
	}
	for _, bad := range []string{"=v", "noeq", "A B=1"} {
		if _, err := parseEnv([]string{bad}); err == nil {
			t.Errorf("parseEnv(%q) accepted", bad)
		}
	}
}
