// Package sandbox is the node-local instance runtime: it runs programs isolated in
// Linux namespaces with cgroup limits (v2, or v1 where the controllers are still on
// v1), a copy-on-write working directory and a disk quota, supervises them directly
// (no shim process per instance), captures their output to rotated log files,
// snapshots their data, and re-adopts them after its own restart.
//
// # Usage
//
// Every binary that creates instances calls Init first thing in main (and TestMain): it
// is the fallback launcher (see Launch) and Bench's probe program, and returns at once
// otherwise.
//
//	func main() {
//		sandbox.Init() // returns at once unless this process is an instance init
//		...
//	}
//
// The usage loop of a node:
//
//	rt, err := sandbox.New(sandbox.Config{
//		StateDir:  "/var/lib/constellation/sandbox",
//		CodeRoots: []string{"/var/lib/constellation/code"},
//		OnEvent:   func(ev sandbox.Event) { publishStatus(ev) }, // started, exited, ...
//	})
//	defer rt.Close() // instances keep running; the next New re-adopts them
//
//	spec, err := sandbox.DecodeSpec(body) // strict: unknown fields are *FieldError
//	_, err = rt.Create(spec)              // validates, makes cgroup and data layer
//	_, err = rt.Start(spec.Name)          // returns once the program is exec'd
//	st, _ := rt.Stats(spec.Name)          // cpu %, ram, disk, pids, uptime
//	_, err = rt.SetLimits(spec.Name, sandbox.Limits{RAMMB: 256}) // live, no restart
//	logs, _ := rt.Logs(ctx, spec.Name, sandbox.LogOptions{Follow: true})
//	_, err = rt.SaveSnapshot(ctx, spec.Name, "before-upgrade")
//	err = rt.Stop(ctx, spec.Name, 10*time.Second) // SIGTERM, grace, kill the cgroup
//	ex, _ := rt.Wait(ctx, spec.Name)              // exited | signaled | oom_killed
//	err = rt.RestoreSnapshot(ctx, "before-upgrade", spec.Name)
//	err = rt.Destroy(ctx, spec.Name, false)       // cgroup, mounts, data, state gone
//
// # What an instance sees (Linux)
//
// New PID, mount, UTS and IPC namespaces (and optionally a network namespace with only
// loopback): the program is PID 1 and sees only its own processes. Its root is a small
// read-only tmpfs holding read-only binds of the host's system directories
// (Config.SystemDirs: /bin /lib /usr /etc ...), /app (an overlay: lower = the shared
// read-only code directory, upper = the instance's private data, which is the working
// directory and HOME), a private /tmp and /dev (null, zero, full, random, urandom,
// tty, shm) and /proc of its PID namespace. It runs as the spec's uid/gid (default
// 65534) with no_new_privs. The program must reap its own children (it is PID 1).
//
// # Launch
//
// Start clones the supervisor with clone3 straight into the new namespaces (on cgroup
// v2 directly inside the instance's cgroup with CLONE_INTO_CGROUP); on amd64 and arm64
// as a vfork (CLONE_VM|CLONE_VFORK, in assembly: the child touches no stack), so no
// page tables are copied. The child runs a list of system calls the parent prepared (on v1 joining the instance's cgroups
// first, so before anything else runs; then the mounts, pivot_root, hostname,
// credentials, no_new_privs) and execs the program, which keeps the PID: no second Go
// runtime starts and nothing stays resident. Where that launcher is not available
// (32-bit architectures, nested Config.SystemDirs) the binary re-executes itself as a
// short-lived Go init (Init) that does the same. The runtime holds a pidfd per
// instance and waits on it through the Go netpoller, so an idle instance costs one
// parked goroutine and one file descriptor.
//
// # Disk quota
//
// Config.DiskQuota picks how disk_mb is enforced: DiskQuotaXFS (one sparse XFS image
// per state directory with a project quota per instance: ENOSPC, instant setup and
// resize), DiskQuotaExt4 (a per-instance ext4 image copied sparsely from a per-size
// template: ENOSPC; disk_mb fixed at create), DiskQuotaPoll (no quota filesystem: the
// runtime measures and kills an instance over its limit, Exit.Reason disk_exceeded) or
// DiskQuotaNone (disk_mb rejected). Auto tries them in that order; Runtime.DiskQuotaMode
// says which one is active.
//
// # Re-adoption
//
// Each instance's state is a JSON file in the state directory. New re-adopts running
// instances (the recorded PID's pidfd, its start time and its membership in the
// instance's cgroup must all match) and keeps supervising them. A re-adopted process is
// not the new runtime's child, so its exit status cannot be read: its exit is reported
// with ReasonUnknown (or ReasonOOMKilled when the cgroup's OOM-kill counter rose).
//
// # Other operating systems
//
// The package builds everywhere. Outside Linux instances are plain child processes
// without isolation, every non-zero limit is a *FieldError wrapping ErrUnenforceable,
// and re-adoption is not available.
package sandbox
