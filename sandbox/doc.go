// Package sandbox is the node-local instance runtime: it runs programs isolated in
// Linux namespaces with cgroup limits (v2, or v1 where the controllers are still on
// v1), a copy-on-write working directory and a disk quota, under a tiny init as PID 1,
// supervises them directly (no shim process per instance), writes their output to
// log files rotated as they are written, snapshots their data, and re-adopts them
// after its own restart.
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
//	_, err = rt.SaveSnapshot(ctx, spec.Name, "before-upgrade") // counts against disk_mb
//	snaps, _ := rt.ListSnapshots(spec.Name)                    // tags, sizes, times
//	err = rt.Signal(spec.Name, syscall.SIGHUP)                 // to the program's group
//	err = rt.Stop(ctx, spec.Name, 10*time.Second) // SIGTERM, grace, kill the cgroup
//	ex, _ := rt.Wait(ctx, spec.Name)              // exited | signaled | oom_killed
//	err = rt.RestoreSnapshot(ctx, spec.Name, "before-upgrade") // its own snapshots only
//	err = rt.DeleteSnapshot(spec.Name, "before-upgrade")
//	err = rt.Destroy(ctx, spec.Name, false) // cgroup, mounts, data, snapshots, state gone
//
// # What an instance sees (Linux)
//
// New PID, mount, UTS, IPC and cgroup namespaces, its own user namespace, and a network
// namespace per Spec.Network (below): PID 1 is the instance init, the program is
// its child (PID 2) and sees only the instance's processes; /proc/self/cgroup shows "/". Its root is a small read-only tmpfs holding
// read-only binds of the host's system directories (Config.SystemDirs: /bin /lib /usr
// ...), /app (an overlay: lower = the shared read-only code directory, upper = the
// instance's private data, which is the working directory and HOME), a private /tmp,
// /etc, /dev and /proc, and /run/constellation.
//
// # Network (Linux)
//
// Spec.Network is NetworkBridge (Config.DefaultNetwork unless configured otherwise),
// NetworkNone (a namespace with loopback only, unshared with the user namespace) or
// NetworkHost (the host's namespace, only when asked for); Create stores the mode.
// Bridge mode: a namespace made at Create by host root (so root inside cannot
// reconfigure it), bound at <instance dir>/netns, with lo and eth0, one end of a veth
// pair on the node bridge (Config.Bridge, made on first use), an address of
// Config.BridgeSubnet (Info.IP, kept with the instance, released by Destroy) and a
// default route via the bridge; egress is masqueraded. Spec.Publish forwards host ports
// (DNAT from any local address, 127.0.0.1 included) and the runtime holds them bound so
// no host process takes them; a conflict names the instance holding the port. All of it
// is netlink (vishvananda/netlink, google/nftables: one table per bridge rebuilt
// atomically, so a new runtime keeps the rules); see network_linux.go. Teardown removes
// the bridge and the table. The launcher joins the namespace with setns before it
// unshares the user namespace. Instances on a bridge reach each other.
//
// # The boundary (Linux)
//
// User namespace: uids and gids 0..65535 inside map to a host range of 65536 that
// belongs to this instance alone (Info.HostUID: Config.UIDBase + slot*65536, the lowest
// free slot, recorded with the instance so a restarted runtime keeps it; see userns.go
// for the choice of base and a comparison with Docker and Podman). uid 0 inside is not
// host root, files the instance writes are owned by its mapped uids, and no host user,
// nobody included, shares its uids. The program runs as the spec's uid/gid inside
// (default 65534). Spec.HostRoot (no user namespace, host uids) is refused unless
// Config.AllowHostRoot is set: a *FieldError for "host_root" wrapping ErrNotPermitted.
//
// Namespace ownership: the mount, PID, UTS, IPC and cgroup namespaces are made by host
// root before the user namespace exists, so they belong to the host's user namespace:
// root inside has no capability over them (it cannot mount, unmount a mask, remount a
// read-only bind, set the hostname or create device nodes); so does a bridge-mode
// network namespace. Only a "none" network namespace belongs to the instance's user
// namespace.
//
// Capabilities: uid 0 inside keeps CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID,
// SETUID and NET_BIND_SERVICE (8 of Docker's 14) as effective, permitted and bounding
// set; other uids keep none, bounding set included. Inheritable and ambient sets are
// empty and no_new_privs is always set.
//
// Seccomp (Spec.Seccomp): SeccompDefault is Docker's default allow-list for a container
// without extra capabilities (no namespaces, mounts, keyrings, io_uring, bpf,
// perf_event_open, open_by_handle_at, kexec, modules, clock setting; clone only without
// namespace flags; clone3 ENOSYS; other ABIs killed), compiled to classic BPF in pure
// Go with a binary-search dispatch; "unconfined" installs none; an absolute path names an
// OCI linux.seccomp profile, checked and copied at Create.
//
// Devices: a deny-all devices cgroup (v1 devices controller, or a v2
// BPF_PROG_TYPE_CGROUP_DEVICE program) allows read and write of null, zero, full,
// random, urandom, tty, ptmx and the pseudo-terminals only, and no mknod. /dev is a
// nodev, nosuid, noexec tmpfs with binds of those host nodes, a private devpts and shm.
//
// /proc: Docker's masked paths (kcore, keys, timer_list, sched_debug, ... under /dev/null;
// acpi, asound, scsi under an empty read-only tmpfs) and read-only bus, fs, irq, sys and
// sysrq-trigger. There is no /sys.
//
// /etc is a read-only tmpfs filled at each start: generated passwd, group, hosts,
// hostname, nsswitch.conf, the host's resolv.conf, and copies (small files) or
// read-only binds (directories) of the host entries in Config.EtcFiles (certificates,
// loader cache, alternatives, time zone, services, protocols). Nothing else of the
// host's /etc is visible.
//
// /run/constellation is the instance's run directory (Runtime.RunDir), bound read-only:
// the node puts the instance's API socket and token there (Runtime.WriteRunFile writes
// a file owned by the instance's root, e.g. mode 0400).
//
// Requirements and limits: Linux 5.12 or later (mount_setattr), root. With the host
// network, root inside cannot bind ports below 1024 (the host's network namespace
// belongs to the host's user namespace). Code directories must be readable by others.
// A data layer not known to be in the instance's range (kept by Destroy with keepData,
// written before user namespaces, restored from another instance's snapshot) is moved
// into it at start; ids keep their values inside. The fallback Go init (32-bit
// architectures, or where the native init cannot be created) cannot create user
// namespaces: there only host_root instances run.
//
// # The instance init
//
// PID 1 of every instance is an init like tini, written in this package: it forks the
// program into its own process group, forwards every signal it receives (SIGTERM,
// SIGINT, SIGHUP, SIGUSR1/2, SIGQUIT, ...) to that group, reaps every child (orphans
// included, so no zombies pile up), and when the program ends reports its wait status
// to the runtime on a pipe and exits. A program without a SIGTERM handler (sleep,
// python) therefore stops at once on Stop instead of ignoring SIGTERM as a namespace's
// PID 1 would; Exit reports the program's status (signaled 15, marked Stopped), and an
// exec failure of the program is an error from Start. On amd64 and arm64 the init is
// about 500 bytes of machine code (pid1_linux_*.s) the runtime wraps into a static ELF
// in a sealed memfd and the launcher execs; it costs about 11 KiB RSS (7 KiB PSS) per
// instance and no measurable start time. Elsewhere, and with the fallback launcher,
// the re-executed Go init stays resident as PID 1 and does the same (about 3 MiB PSS).
//
// The init is inside the boundary: the launcher execs it after the capability drop, the
// uid/gid switch, no_new_privs and the seccomp filter, in the instance's user
// namespace, so it runs as the instance's uid with the program's capabilities and
// filter, and the program can neither kill it (a namespace's init gets no signal it has
// no handler for) nor gain anything through it. An operator seccomp profile must allow
// execveat and the init's calls (checked when the profile is loaded).
//
// # Logs
//
// stdout and stderr are pipes the runtime reads and writes to <instance>/stdout.log and
// stderr.log, rotating before a write would pass Config.LogMaxBytes (Config.LogFiles
// files per stream, the current one included: never more than their product on disk,
// no line lost to a rotation). Output over Config.LogRateBytes per second is dropped,
// counted (Stats.LogDroppedBytes) and marked by a line in the log. The init holds a
// second read end of each pipe, so output written while the runtime restarts waits in
// the pipe (1 MiB) and the next runtime reads it on. Logs streams rotated files and
// follows across rotations with bounded memory.
//
// # Snapshots
//
// A snapshot belongs to its instance: it is stored in the instance's data directory,
// so it counts against disk_mb (a snapshot that would not fit is refused with
// ErrDiskQuota), is listed and deleted per instance, restores only into that instance,
// and is removed with it by Destroy unless its data is kept.
//
// # Launch
//
// Start clones the supervisor with clone3 straight into the new namespaces (on cgroup
// v2 directly inside the instance's cgroup with CLONE_INTO_CGROUP); on amd64 and arm64
// sharing its memory (CLONE_VM, in assembly: the child touches no stack), so no page
// tables are copied. The child runs a list of system calls the parent prepared
// (buildChild: cgroup join, mounts, pivot_root, user namespace, credentials,
// capabilities, no_new_privs, seccomp) and execs the instance init from its memfd
// (execveat), which keeps the PID and starts the program: no second Go runtime starts. The parent writes the child's
// uid/gid maps once the child has unshared its user namespace, and learns of the exec
// from a close-on-exec pipe. Where that launcher is not available (32-bit
// architectures) the binary re-executes itself as the Go init (Init) that runs the same
// list and stays resident as PID 1. The runtime holds a pidfd per instance and waits on it through the Go
// netpoller, so an idle instance costs one parked goroutine and one file descriptor.
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
// not the new runtime's child; the runtime takes the init's status and output pipes
// back (pidfd_getfd), so the program's exit status and output still arrive. Only when
// the init itself was killed (the cgroup kill after a stop's grace, the OOM killer) is
// an unobserved end reported with ReasonUnknown (or ReasonOOMKilled when the cgroup's
// OOM-kill counter rose). Instances started by an older runtime (the program as PID 1
// writing its log files) are supervised as before until their next start.
//
// # Other operating systems
//
// The package builds everywhere. Outside Linux instances are plain child processes
// without isolation: every non-zero limit, a spec without host_root and a seccomp
// filter other than "unconfined" are *FieldError values wrapping ErrUnenforceable, and
// re-adoption is not available.
package sandbox
