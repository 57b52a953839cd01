//! The OCI lifecycle driven through mica's CLI, as an engine drives runc:
//! create / start / state / kill / delete / run / exec / ps / list /
//! pause / resume / hooks, bad configs, crash consistency and parallel runs.
//!
//! Every mica invocation here has a timeout (a hung mica fails the test
//! instead of hanging the suite), and every container is cleaned up by a
//! guard that force-deletes it and then, if mica could not, kills the
//! processes carrying the container's mark (an env var given both to the
//! mica command and to the container's process).

mod common;

use common::{fixtures, mica_bin, parse_probe, remove_ns, unique, Env};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The env var marking a container's processes (value: the container id).
const MARK: &str = "MICA_TEST_MARK";
/// How long one mica command may take before it counts as hung.
const CMD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a container may take to reach a state.
const STATE_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Running mica with a timeout
// ---------------------------------------------------------------------------

/// The result of one finished mica command.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> bool {
        self.code == 0
    }
}

/// A running mica command whose stdout/stderr go to files (a container
/// started by it inherits them, so pipes would never reach EOF).
struct Running {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    what: String,
}

fn spawn_mica(env: &Env, args: &[&str], mark: Option<&str>) -> Running {
    let out = env.tmp.path().join(unique("stdout"));
    let err = env.tmp.path().join(unique("stderr"));
    let mut c = env.cmd();
    c.args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap());
    if let Some(m) = mark {
        c.env(MARK, m);
    }
    let child = c.spawn().expect("spawn mica");
    Running {
        child,
        out,
        err,
        what: format!("mica {}", args.join(" ")),
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() >= end {
            // Our own child: kill it by its pid.
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Running {
    /// Wait; `None` when it did not finish in time (it is killed then).
    fn try_finish(mut self, timeout: Duration) -> Result<Out, String> {
        let status = wait_timeout(&mut self.child, timeout);
        let stdout = std::fs::read_to_string(&self.out).unwrap_or_default();
        let stderr = std::fs::read_to_string(&self.err).unwrap_or_default();
        let _ = std::fs::remove_file(&self.out);
        let _ = std::fs::remove_file(&self.err);
        match status {
            Some(s) => Ok(Out {
                code: s.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)),
                stdout,
                stderr,
            }),
            None => Err(format!(
                "`{}` did not finish within {timeout:?} (killed it; mica hangs); stdout={stdout:?} stderr={stderr:?}",
                self.what
            )),
        }
    }

    fn finish(self, timeout: Duration) -> Out {
        self.try_finish(timeout).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// `mica --root ROOT ARGS` with the default timeout; panics if it hangs.
fn mica(env: &Env, args: &[&str]) -> Out {
    spawn_mica(env, args, None).finish(CMD_TIMEOUT)
}

/// Exactly one line on stderr, starting with "mica:", and no panic text.
fn assert_one_error_line(out: &Out, what: &str) {
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected exactly one line on stderr, got {:?} (stdout {:?})",
        out.stderr,
        out.stdout
    );
    assert!(
        lines[0].starts_with("mica: "),
        "{what}: stderr line does not start with \"mica: \": {:?}",
        lines[0]
    );
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE", "thread 'main'"] {
        assert!(
            !out.stderr.contains(bad),
            "{what}: panic text in stderr: {:?}",
            out.stderr
        );
    }
}

/// A failed command: non-zero, one "mica:" line containing `needle`.
fn assert_fails_with(out: &Out, needle: &str, what: &str) {
    assert_ne!(
        out.code, 0,
        "{what}: expected failure, got success: {out:?}"
    );
    assert_one_error_line(out, what);
    assert!(
        out.stderr.contains(needle),
        "{what}: stderr {:?} does not contain {needle:?}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------
// /proc and cgroupfs helpers
// ---------------------------------------------------------------------------

/// The state letter of /proc/PID/stat (None if the process is gone).
fn proc_state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next()
}

/// Alive: exists and is not a zombie.
fn alive(pid: i32) -> bool {
    pid > 0 && matches!(proc_state(pid), Some(c) if c != 'Z' && c != 'X')
}

fn wait_dead(pid: i32, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Live processes that belong to container `id`: its mark in their environ
/// (the container's process, or a clone of the mica command that made it),
/// or `id` as an argument (a mica command for it, or a clone of one).
fn marked_processes(id: &str) -> Vec<(i32, Vec<String>)> {
    let mark = format!("{MARK}={id}");
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me || !alive(pid) {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let in_env = environ.split(|b| *b == 0).any(|v| v == mark.as_bytes());
        let args = cmdline(pid);
        if in_env || args.iter().any(|a| a == id) {
            found.push((pid, args));
        }
    }
    found
}

/// Poll until no process of `id` is alive (a SIGKILL is asynchronous).
fn wait_no_marked_processes(id: &str, timeout: Duration) -> Vec<(i32, Vec<String>)> {
    let end = Instant::now() + timeout;
    loop {
        let p = marked_processes(id);
        if p.is_empty() || Instant::now() >= end {
            return p;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every place a cgroup dir called `name` could be made for this process:
/// each cgroup mount, below each of our own cgroups, their parents, and
/// the mount root.
fn cgroup_candidates(name: &str) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let mp = left.split(' ').nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(mp))
        })
        .collect();
    let own: Vec<String> = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.splitn(3, ':')
                .nth(2)
                .map(|p| p.trim_start_matches('/').to_string())
        })
        .collect();
    let mut set = BTreeSet::new();
    for m in &mounts {
        set.insert(m.join(name));
        for p in &own {
            let rel = Path::new(p);
            set.insert(m.join(rel).join(name));
            if let Some(parent) = rel.parent() {
                set.insert(m.join(parent).join(name));
            }
        }
    }
    set.into_iter().collect()
}

fn leftover_cgroups(name: &str) -> Vec<PathBuf> {
    cgroup_candidates(name)
        .into_iter()
        .filter(|p| p.exists())
        .collect()
}

/// The cgroupsPath every container of this file gets (relative: below our
/// own cgroup), so leftovers can be found by name.
fn cgroup_name(id: &str) -> String {
    format!("mica-lc-{id}")
}

/// Every cgroup name a container of this file may get: ours, the crash
/// test's, and mica's default.
fn cgroup_names(id: &str) -> [String; 3] {
    [
        cgroup_name(id),
        format!("mica-crash-{id}"),
        format!("mica-{id}"),
    ]
}

// ---------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------

/// One container id of a test; force-deleted on drop. If mica cannot delete
/// it, the processes carrying its mark are killed and its (uniquely named)
/// cgroup dirs removed, so a broken mica never leaks into other tests.
struct Ctr<'a> {
    env: &'a Env,
    id: String,
}

impl<'a> Ctr<'a> {
    fn new(env: &'a Env, prefix: &str) -> Ctr<'a> {
        Ctr {
            env,
            id: unique(&format!("lc-{prefix}")),
        }
    }

    /// A bundle for this container: the fixture, args, the mark in the
    /// process env, a unique cgroupsPath, then `edit`.
    fn bundle(&self, rootfs: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
        let id = self.id.clone();
        self.env.bundle(rootfs, args, move |cfg| {
            mark_config(cfg, &id);
            edit(cfg)
        })
    }

    /// `mica ARGS` (the mark in its environment).
    fn mica(&self, args: &[&str]) -> Out {
        self.spawn(args).finish(CMD_TIMEOUT)
    }

    /// `exec -d --pid-file PF ID -- probe --sleep inf --quiet`.
    fn exec_sleeper(&self, pid_file: &Path) -> Out {
        let pf = pid_file.to_str().unwrap();
        self.mica(&[
            "exec",
            "-d",
            "--pid-file",
            pf,
            &self.id,
            "--",
            PROBE,
            "--sleep",
            "inf",
            "--quiet",
        ])
    }

    fn spawn(&self, args: &[&str]) -> Running {
        spawn_mica(self.env, args, Some(&self.id))
    }

    fn create(&self, bundle: &Path, extra: &[&str]) -> Out {
        let b = bundle.to_str().unwrap();
        let mut args = vec!["create", "--bundle", b];
        args.extend_from_slice(extra);
        args.push(&self.id);
        self.mica(&args)
    }

    fn create_ok(&self, bundle: &Path) {
        let out = self.create(bundle, &[]);
        assert!(out.ok(), "create {}: {out:?}", self.id);
        assert_eq!(out.stderr, "", "create printed on stderr");
    }

    fn start_ok(&self) {
        let out = self.mica(&["start", &self.id]);
        assert!(out.ok(), "start {}: {out:?}", self.id);
    }

    fn state(&self) -> Value {
        let out = self.mica(&["state", &self.id]);
        assert!(out.ok(), "state {}: {out:?}", self.id);
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state is not JSON ({e}): {out:?}"));
        assert_eq!(v["id"], json!(self.id), "state of the wrong container: {v}");
        v
    }

    fn status(&self) -> String {
        self.state()["status"].as_str().unwrap_or("").to_string()
    }

    /// Poll `state` until it says `want`; returns that state.
    fn wait_status(&self, want: &str) -> Value {
        let end = Instant::now() + STATE_TIMEOUT;
        loop {
            let st = self.state();
            if st["status"] == want {
                return st;
            }
            assert!(
                Instant::now() < end,
                "{} never became {want:?}: last state {st}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// After spawning `run`: poll until the container exists and is
    /// running; returns its init pid once the probe has been exec'd.
    fn wait_run_started(&self) -> i32 {
        let end = Instant::now() + STATE_TIMEOUT;
        let pid = loop {
            let out = self.mica(&["state", &self.id]);
            if out.ok() {
                let st: Value = serde_json::from_str(&out.stdout).unwrap();
                if st["status"] == "running" {
                    break st["pid"].as_i64().unwrap() as i32;
                }
            } else {
                assert!(
                    out.stderr.contains("does not exist"),
                    "state {}: {out:?}",
                    self.id
                );
            }
            assert!(
                Instant::now() < end,
                "{} never became running: {out:?}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        while cmdline(pid).first().map(String::as_str) != Some(PROBE) {
            assert!(Instant::now() < end, "init {pid} never exec'd the probe");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The probe sets its signal handlers before anything else; give it
        // a moment to get there.
        std::thread::sleep(Duration::from_millis(100));
        pid
    }

    fn pid(&self) -> i32 {
        self.state()["pid"].as_i64().unwrap() as i32
    }

    /// create + start the bundle; returns the init pid.
    fn start_bundle(&self, bundle: &Path) -> i32 {
        self.create_ok(bundle);
        self.start_ok();
        let st = self.state();
        assert_eq!(st["status"], "running", "after start: {st}");
        st["pid"].as_i64().unwrap() as i32
    }

    fn state_dir(&self) -> PathBuf {
        self.env.root.join(&self.id)
    }

    /// Nothing of this container is left: no state dir, no process, no cgroup.
    /// `delete --force` succeeds and leaves nothing of the container.
    fn force_delete_gone(&self) {
        let out = self.mica(&["delete", "--force", &self.id]);
        assert!(out.ok(), "delete --force: {out:?}");
        self.assert_gone();
    }

    fn assert_gone(&self) {
        assert!(
            !self.state_dir().exists(),
            "state dir {} left behind",
            self.state_dir().display()
        );
        let procs = wait_no_marked_processes(&self.id, Duration::from_secs(2));
        assert!(
            procs.is_empty(),
            "processes of {} still alive: {procs:?}",
            self.id
        );
        for name in cgroup_names(&self.id) {
            let left = leftover_cgroups(&name);
            assert!(left.is_empty(), "cgroup dirs left behind: {left:?}");
        }
    }
}

impl Drop for Ctr<'_> {
    fn drop(&mut self) {
        let _ = spawn_mica(self.env, &["delete", "--force", &self.id], None)
            .try_finish(Duration::from_secs(15));
        // If mica could not clean up, do it ourselves: only what this
        // container's mark or id names.
        let procs = marked_processes(&self.id);
        for (pid, _) in &procs {
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        for (pid, _) in &procs {
            wait_dead(*pid, Duration::from_secs(2));
        }
        if !procs.is_empty() {
            let _ = spawn_mica(self.env, &["delete", "--force", &self.id], None)
                .try_finish(Duration::from_secs(15));
        }
        for name in cgroup_names(&self.id) {
            for dir in leftover_cgroups(&name) {
                let _ = std::fs::remove_dir(&dir);
            }
        }
    }
}

/// Put the container's mark into its env and give it a unique cgroup.
fn mark_config(cfg: &mut Value, id: &str) {
    let env = cfg["process"]["env"].as_array_mut().expect("process.env");
    env.push(json!(format!("{MARK}={id}")));
    cfg["linux"]["cgroupsPath"] = json!(cgroup_name(id));
}

const PROBE: &str = "/usr/bin/mica-probe";

fn read_pid_file(p: &Path) -> (String, i32) {
    let s = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("pid file {}: {e}", p.display()));
    let pid = s
        .parse::<i32>()
        .unwrap_or_else(|_| panic!("pid file holds {s:?}, not a bare pid"));
    (s, pid)
}

fn ns_link(pid: i32, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/ns/{ns}: {e}"))
        .to_string_lossy()
        .into_owned()
}

// ---------------------------------------------------------------------------
// 1. The normal lifecycle
// ---------------------------------------------------------------------------

#[test]
fn create_start_kill_delete() {
    let env = Env::new();
    let c = Ctr::new(&env, "life");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf"], |_| {});
    let pid_file = env.tmp.path().join("init.pid");

    let out = c.create(&b, &["--pid-file", pid_file.to_str().unwrap()]);
    assert!(out.ok(), "create: {out:?}");
    assert_eq!(out.stderr, "", "create printed on stderr");

    let st = c.state();
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], json!(c.id));
    assert_eq!(
        st["bundle"],
        json!(std::fs::canonicalize(&b).unwrap()),
        "{st}"
    );
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(pid > 0, "created container without a pid: {st}");
    assert!(alive(pid), "init {pid} of a created container is not alive");
    // Before start the init is still mica (waiting on the exec fifo).
    let argv = cmdline(pid);
    assert_eq!(
        argv.first().map(String::as_str),
        Some(mica_bin()),
        "created init's cmdline: {argv:?}"
    );
    assert!(
        argv.iter().any(|a| a == "create") && argv.contains(&c.id),
        "{argv:?}"
    );

    let (raw, file_pid) = read_pid_file(&pid_file);
    assert_eq!(raw, pid.to_string(), "pid file must hold the bare pid");
    assert_eq!(file_pid, pid);

    c.start_ok();
    let st = c.state();
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"], json!(pid), "the pid changed at start: {st}");
    assert_eq!(
        cmdline(pid),
        [PROBE, "--sleep", "inf"],
        "start did not exec the process"
    );
    // Positive controls for the leak checks used everywhere in this file:
    // the mark finds the process, and the cgroup is where cgroupsPath says.
    let procs = marked_processes(&c.id);
    assert_eq!(
        procs.iter().map(|p| p.0).collect::<Vec<_>>(),
        [pid],
        "{procs:?}"
    );
    let cgs = leftover_cgroups(&cgroup_name(&c.id));
    if let Some(own) = common::own_cgroup("pids") {
        let pids_dir = Path::new("/sys/fs/cgroup/pids")
            .join(own.trim_start_matches('/'))
            .join(cgroup_name(&c.id));
        assert!(
            cgs.contains(&pids_dir),
            "no pids cgroup {} for the container: {cgs:?}",
            pids_dir.display()
        );
        let procs = std::fs::read_to_string(pids_dir.join("cgroup.procs")).unwrap();
        assert_eq!(
            procs.trim(),
            pid.to_string(),
            "the init is not (alone) in its cgroup"
        );
    }

    let out = c.mica(&["kill", &c.id, "TERM"]);
    assert!(out.ok(), "kill TERM: {out:?}");
    let st = c.wait_status("stopped");
    assert_eq!(st["pid"], 0, "a stopped container reports pid 0: {st}");
    assert!(
        wait_dead(pid, STATE_TIMEOUT),
        "init {pid} still alive after stopped"
    );

    let out = c.mica(&["delete", &c.id]);
    assert!(out.ok(), "delete: {out:?}");
    assert_eq!(out.stderr, "");
    let out = c.mica(&["state", &c.id]);
    assert_fails_with(&out, "does not exist", "state after delete");
    c.assert_gone();
}

/// A startContainer hook that takes 0.3 s: it runs in the init between
/// the go-ahead and the exec, so a command that returns before the exec
/// returns with the init still mica.
fn slow_start_hook(cfg: &mut Value) {
    cfg["hooks"] = json!({
        "startContainer": [{"path": "/bin/sleep", "args": ["sleep", "0.3"]}],
    });
}

/// `start` returns once the process has exec'd, as runc's does: a slow
/// startContainer hook (run by the init between the fifo and the exec)
/// makes a start that returned early see the init still as mica.
#[test]
fn start_returns_after_the_exec() {
    let env = Env::new();
    let c = Ctr::new(&env, "startexec");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf"], slow_start_hook);
    c.create_ok(&b);
    let pid = c.pid();
    assert_eq!(cmdline(pid).first().map(String::as_str), Some(mica_bin()));
    c.start_ok();
    assert_eq!(
        cmdline(pid),
        [PROBE, "--sleep", "inf"],
        "start returned before the exec"
    );
    let out = c.mica(&["delete", "--force", &c.id]);
    assert!(out.ok(), "delete: {out:?}");
    c.assert_gone();
}

/// A created container of a sleeping probe whose init (its pid returned)
/// got `sig` from us.
fn created_and_signalled<'a>(env: &'a Env, prefix: &str, sig: libc::c_int) -> (Ctr<'a>, i32) {
    let c = Ctr::new(env, prefix);
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf"], |_| {});
    c.create_ok(&b);
    let pid = c.pid();
    // SAFETY: kill(2) on the init we created.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    (c, pid)
}

/// A start whose init died before it took the byte says so and leaves the
/// container stopped, not running.
#[test]
fn start_of_a_dead_init_fails() {
    let env = Env::new();
    let (c, pid) = created_and_signalled(&env, "startdead", libc::SIGKILL);
    assert!(wait_dead(pid, STATE_TIMEOUT), "init {pid} survived SIGKILL");
    let out = c.mica(&["start", &c.id]);
    assert!(!out.ok(), "start of a dead init succeeded: {out:?}");
    assert_eq!(c.status(), "stopped");
    let out = c.mica(&["delete", &c.id]);
    assert!(out.ok(), "delete: {out:?}");
    c.assert_gone();
}

/// A `start` waiting for an init that cannot exec (stopped here) holds
/// nobody up: state, list and kill go on, and once the init is killed the
/// start says it is not running.
#[test]
fn start_waiting_for_a_stopped_init_blocks_nobody() {
    let env = Env::new();
    let (c, _) = created_and_signalled(&env, "startstop", libc::SIGSTOP);
    let start = c.spawn(&["start", &c.id]);
    // Every call below has mica's hang timeout: none may wait for the start.
    let deadline = Instant::now() + STATE_TIMEOUT;
    while c.status() != "running" {
        assert!(Instant::now() < deadline, "start never signalled the init");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = c.mica(&["list", "-q"]);
    assert!(out.ok() && out.stdout.contains(&c.id), "list: {out:?}");
    let out = c.mica(&["kill", &c.id, "KILL"]);
    assert!(out.ok(), "kill: {out:?}");
    let out = start.finish(CMD_TIMEOUT);
    assert!(
        !out.ok(),
        "start of an init killed before it exec'd: {out:?}"
    );
    assert!(out.stderr.contains("not running"), "{out:?}");
    c.wait_status("stopped");
    let out = c.mica(&["delete", &c.id]);
    assert!(out.ok(), "delete: {out:?}");
    c.assert_gone();
}

/// A cwd that leads out of the rootfs through one of the runtime's own fds
/// (runc's CVE-2024-21626: `/proc/self/fd/N`) is refused, whatever N. The
/// fds mica holds differ on a new state root and on one in use (the reused
/// dirs), so each N is tried on both.
#[test]
fn cwd_through_an_inherited_fd_is_refused() {
    for n in 3..=12 {
        let env = Env::new();
        for round in ["new root", "root in use"] {
            let c = Ctr::new(&env, &format!("cwdfd{n}"));
            let cwd = format!("/proc/self/fd/{n}");
            let b = c.bundle("busybox", &["/bin/sh", "-c", "pwd; ls .."], |cfg| {
                cfg["process"]["cwd"] = json!(cwd);
            });
            let out = c.mica(&["run", "--bundle", b.to_str().unwrap(), &c.id]);
            assert_ne!(
                out.code, 0,
                "cwd {cwd} ({round}) was accepted: the process ran in {:?}",
                out.stdout
            );
            c.assert_gone();
        }
    }
}

/// `run` (attached or detached) reports a failing startContainer hook as
/// its own error and leaves nothing behind.
#[test]
fn run_reports_a_failing_start_container_hook() {
    let env = Env::new();
    for detach in [false, true] {
        let c = Ctr::new(&env, if detach { "runhookd" } else { "runhook" });
        let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |cfg| {
            cfg["hooks"] = json!({"startContainer": [{"path": "/bin/false"}]});
        });
        let mut args = vec!["run", "--bundle", b.to_str().unwrap()];
        if detach {
            args.push("-d");
        }
        args.push(&c.id);
        let out = c.mica(&args);
        assert_fails_with(&out, "startContainer", "run with a failing hook");
        c.assert_gone();
    }
}

/// `run` with nothing for mica to do between clone and exec clones its
/// child alone (sharing mica's memory until its exec, reporting into it):
/// the trace says which way it went. Alone, the process runs and its exit
/// status is run's; an execve that fails after every check (E2BIG), a
/// mount that fails and a limit the kernel refuses (written before the
/// clone) are still reported, with nothing left behind. With a hook, the
/// child is not alone and still runs.
#[test]
fn run_clones_the_child_alone_when_nothing_needs_mica() {
    let env = Env::new();
    let run =
        |c: &Ctr, b: &Path| c.mica(&["--debug", "run", "--bundle", b.to_str().unwrap(), &c.id]);
    let alone = |out: &Out| out.stderr.contains("exec: the child alone");

    let c = Ctr::new(&env, "alone");
    let b = c.bundle("busybox", &[PROBE, "--quiet", "--exit", "3"], |_| {});
    let out = run(&c, &b);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(alone(&out), "no hooks, no terminal: alone: {out:?}");
    c.assert_gone();

    let c = Ctr::new(&env, "alone2big");
    let huge = "x".repeat(200 * 1024);
    let b = c.bundle("busybox", &[PROBE, &huge], |_| {});
    let out = run(&c, &b);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(alone(&out), "{out:?}");
    assert!(out.stderr.contains("argument list too long"), "{out:?}");
    c.assert_gone();

    let c = Ctr::new(&env, "alonemnt");
    let b = c.bundle("busybox", &[PROBE], |cfg| {
        cfg["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/mnt", "type": "bind", "source": "/no/such/source", "options": ["rbind"]}),
        );
    });
    let out = run(&c, &b);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("/no/such/source"), "{out:?}");
    c.assert_gone();

    // Alone, the limits are written before the clone: one the kernel
    // refuses fails the run there, with nothing left behind.
    let c = Ctr::new(&env, "alonelim");
    let b = c.bundle("busybox", &[PROBE], |cfg| {
        cfg["linux"]["resources"]["cpu"] = json!({"cpus": "4095"});
    });
    let out = run(&c, &b);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("4095"), "{out:?}");
    assert!(!alone(&out), "it never got to the clone: {out:?}");
    c.assert_gone();

    let c = Ctr::new(&env, "nalone");
    let b = c.bundle("busybox", &[PROBE, "--quiet", "--exit", "3"], |cfg| {
        cfg["hooks"] = json!({"startContainer": [{"path": "/bin/true"}]});
    });
    let out = run(&c, &b);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        !alone(&out),
        "a hook the child runs needs the state from mica: {out:?}"
    );
    assert!(out.stderr.contains("trace: clone "), "{out:?}");
    c.assert_gone();
}

// ---------------------------------------------------------------------------
// 2. Wrong transitions
// ---------------------------------------------------------------------------

#[test]
fn start_twice_fails() {
    let env = Env::new();
    let c = Ctr::new(&env, "start2");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf"], |_| {});
    let pid = c.start_bundle(&b);
    let out = c.mica(&["start", &c.id]);
    assert_fails_with(&out, "running", "second start");
    assert_eq!(c.status(), "running");
    assert_eq!(c.pid(), pid);
    assert!(alive(pid));
}

#[test]
fn delete_running_needs_force() {
    let env = Env::new();
    let c = Ctr::new(&env, "delrun");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf"], |_| {});
    let pid = c.start_bundle(&b);

    let out = c.mica(&["delete", &c.id]);
    assert_fails_with(&out, "running", "delete of a running container");
    assert_eq!(
        c.status(),
        "running",
        "delete without --force changed the container"
    );
    assert!(alive(pid), "delete without --force killed the process");
    assert!(c.state_dir().join("state.json").exists());

    let out = c.mica(&["delete", "--force", &c.id]);
    assert!(out.ok(), "delete --force: {out:?}");
    assert_eq!(out.stderr, "");
    assert!(
        wait_dead(pid, STATE_TIMEOUT),
        "init {pid} alive after delete --force"
    );
    assert_fails_with(
        &c.mica(&["state", &c.id]),
        "does not exist",
        "state after delete --force",
    );
    c.assert_gone();
}

#[test]
fn delete_created_container_needs_force() {
    let env = Env::new();
    let c = Ctr::new(&env, "delcreated");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf"], |_| {});
    c.create_ok(&b);
    let pid = c.pid();
    assert!(alive(pid));
    // Runtime spec: deleting a container that is not stopped "MUST have
    // no effect on the container and MUST generate an error".
    let out = c.mica(&["delete", &c.id]);
    assert_fails_with(
        &out,
        "created",
        "delete of a created container without --force",
    );
    assert_eq!(c.status(), "created");
    assert!(alive(pid), "delete without --force killed the created init");
    let out = c.mica(&["delete", "--force", &c.id]);
    assert!(out.ok(), "delete --force of a created container: {out:?}");
    assert!(
        wait_dead(pid, STATE_TIMEOUT),
        "init {pid} of a deleted created container alive"
    );
    c.assert_gone();
}

#[test]
fn kill_stopped_container_fails() {
    let env = Env::new();
    let c = Ctr::new(&env, "killstopped");
    let b = c.bundle("busybox", &[PROBE, "--quiet"], |_| {});
    c.create_ok(&b);
    c.start_ok();
    c.wait_status("stopped");
    let out = c.mica(&["kill", &c.id, "KILL"]);
    assert_fails_with(&out, "container not running", "kill of a stopped container");
    // Stopped: delete without --force works.
    let out = c.mica(&["delete", &c.id]);
    assert!(out.ok(), "delete of a stopped container: {out:?}");
    c.assert_gone();
}

/// runc's global flags go before the command, in mica as in runc: after it
/// they are refused with a line saying where they go, and nothing is made.
#[test]
fn global_flags_go_before_the_command() {
    let env = Env::new();
    let id = unique("lc-global");
    let root = env.root.display().to_string();
    for flag in [
        &["--root", root.as_str()][..],
        &["--debug"],
        &["--log-format=json"],
    ] {
        let mut args = vec!["state", id.as_str()];
        args.extend_from_slice(flag);
        let out = mica(&env, &args);
        let name = flag[0].split('=').next().unwrap();
        assert_fails_with(
            &out,
            &format!("{name} is a global flag and goes before the command"),
            &format!("mica {}", args.join(" ")),
        );
    }
    // Before the command they are taken: the id is then simply unknown.
    let out = mica(&env, &["--debug", "--log-format", "text", "state", &id]);
    assert_fails_with(&out, "does not exist", "global flags before the command");
    // JSON without --log: runc's JSON record goes to stderr, one line.
    let out = mica(&env, &["--log-format", "json", "state", &id]);
    assert_ne!(out.code, 0);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{:?}", out.stderr);
    let rec: Value = serde_json::from_str(lines[0]).expect("a JSON log record");
    assert_eq!(rec["level"], "error", "{rec}");
    assert!(
        rec["msg"].as_str().unwrap().contains("does not exist") && rec["time"].is_string(),
        "{rec}"
    );
    assert!(env.state_entries().is_empty(), "{:?}", env.state_entries());
}

#[test]
fn unknown_id_does_not_exist() {
    let env = Env::new();
    let id = unique("lc-nosuch");
    let cmds: Vec<Vec<&str>> = vec![
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
        vec!["ps", &id],
        vec!["pause", &id],
        vec!["resume", &id],
        vec!["exec", &id, "--", PROBE],
        vec!["events", "--stats", &id],
        vec!["events", "--interval", "100ms", &id],
    ];
    for args in cmds {
        let out = mica(&env, &args);
        assert_fails_with(&out, "does not exist", &format!("mica {}", args.join(" ")));
    }
    assert!(
        env.state_entries().is_empty(),
        "commands on an unknown id created {:?}",
        env.state_entries()
    );
}

#[test]
fn create_existing_id_fails() {
    let env = Env::new();
    let c = Ctr::new(&env, "exists");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf"], |_| {});
    c.create_ok(&b);
    let pid = c.pid();
    let b2 = c.bundle("busybox", &[PROBE, "--sleep", "inf"], |_| {});
    let out = c.create(&b2, &[]);
    assert_fails_with(&out, "already exists", "second create with the same id");
    // The first container is untouched.
    let st = c.state();
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["pid"], json!(pid));
    assert_eq!(st["bundle"], json!(std::fs::canonicalize(&b).unwrap()));
    assert!(alive(pid));
    // Only one process of this container exists (the failed create cloned nothing).
    let procs = wait_no_marked_processes_except(&c.id, pid);
    assert!(
        procs.is_empty(),
        "the failed create left processes: {procs:?}"
    );
    c.start_ok();
    assert_eq!(c.status(), "running");
}

/// Processes of `id` other than `keep`, polled until none (2 s).
fn wait_no_marked_processes_except(id: &str, keep: i32) -> Vec<(i32, Vec<String>)> {
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        let p: Vec<_> = marked_processes(id)
            .into_iter()
            .filter(|(p, _)| *p != keep)
            .collect();
        if p.is_empty() || Instant::now() >= end {
            return p;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// 3. kill
// ---------------------------------------------------------------------------

/// `run` in the foreground (in a thread), kill it with `signal` once it is
/// running, and return run's exit code.
fn run_and_kill(env: &Env, prefix: &str, probe_args: &[&str], signal: &str) -> i32 {
    let c = Ctr::new(env, prefix);
    let mut args = vec![PROBE];
    args.extend_from_slice(probe_args);
    let b = c.bundle("busybox", &args, |_| {});
    let run = c.spawn(&["run", "--bundle", b.to_str().unwrap(), &c.id]);
    let pid = c.wait_run_started();
    let out = c.mica(&["kill", &c.id, signal]);
    assert!(out.ok(), "kill {signal}: {out:?}");
    let out = run.finish(CMD_TIMEOUT);
    assert!(
        wait_dead(pid, STATE_TIMEOUT),
        "init {pid} alive after kill {signal}"
    );
    // A foreground run deletes the container when its process exits.
    assert_fails_with(
        &c.mica(&["state", &c.id]),
        "does not exist",
        "state after run returned",
    );
    c.assert_gone();
    out.code
}

#[test]
fn kill_term_by_name_stops_probe_with_143() {
    let env = Env::new();
    assert_eq!(
        run_and_kill(&env, "term", &["--sleep", "inf", "--quiet"], "TERM"),
        143
    );
}

#[test]
fn kill_by_name_and_number() {
    let env = Env::new();
    for (sig, code) in [
        ("KILL", 137),
        ("SIGKILL", 137),
        ("9", 137),
        ("15", 143),
        ("SIGTERM", 143),
    ] {
        let got = run_and_kill(&env, "sig", &["--sleep", "inf", "--quiet"], sig);
        assert_eq!(got, code, "kill {sig}: run returned {got}");
    }
    // SIGTERM ignored: only KILL stops it.
    let got = run_and_kill(
        &env,
        "ignterm",
        &["--sleep", "inf", "--quiet", "--ignore-term"],
        "KILL",
    );
    assert_eq!(got, 137);
}

#[test]
fn kill_default_signal_is_term() {
    let env = Env::new();
    let c = Ctr::new(&env, "killdefault");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |_| {});
    let run = c.spawn(&["run", "--bundle", b.to_str().unwrap(), &c.id]);
    let pid = c.wait_run_started();
    let out = c.mica(&["kill", &c.id]);
    assert!(out.ok(), "kill without a signal: {out:?}");
    assert_eq!(run.finish(CMD_TIMEOUT).code, 143);
    assert!(wait_dead(pid, STATE_TIMEOUT));
}

/// A signal sent to the foreground `mica run` itself reaches the container
/// (runc forwards every signal it can catch: real-time ones, ALRM, ...), and
/// run returns the process's status. (Only 7 were forwarded once; any other
/// killed mica and left the container running.)
#[test]
fn run_forwards_signals() {
    let env = Env::new();
    for sig in [libc::SIGTERM, libc::SIGALRM, libc::SIGXCPU, 40] {
        let c = Ctr::new(&env, &format!("fwd{sig}"));
        // Not a pid namespace's init: the kernel would drop a signal it has
        // no handler for.
        let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |cfg| {
            remove_ns(cfg, "pid")
        });
        let mut run = c.spawn(&["run", "--bundle", b.to_str().unwrap(), &c.id]);
        let pid = c.wait_run_started();
        // Our own child, by its pid.
        unsafe { libc::kill(run.child.id() as i32, sig) };
        let status =
            wait_timeout(&mut run.child, CMD_TIMEOUT).expect("mica run hung after the signal");
        // The probe dies of it (default action); run reports that as 128+N.
        assert_eq!(
            status.code(),
            Some(128 + sig),
            "mica run got signal {sig}: {status:?}"
        );
        assert!(
            wait_dead(pid, STATE_TIMEOUT),
            "init {pid} survived the forwarded signal {sig}"
        );
        c.assert_gone();
    }
}

/// A signal mica raises itself is not forwarded: a poststart hook that does
/// not read its stdin makes mica's write of a large state fail with EPIPE,
/// and that SIGPIPE (queued, as run blocks it) must not reach the container.
#[test]
fn run_keeps_its_own_sigpipe() {
    let env = Env::new();
    let c = Ctr::new(&env, "ownpipe");
    let b = c.bundle("busybox", &["/bin/sleep", "0.5"], |cfg| {
        remove_ns(cfg, "pid");
        cfg["hooks"] = json!({"poststart": [{"path": "/bin/true"}]});
        // More state than a pipe holds.
        cfg["annotations"] = json!({"org.mica.test.big": "x".repeat(200 * 1024)});
    });
    let out = c.mica(&["run", "--bundle", b.to_str().unwrap(), &c.id]);
    assert_eq!(out.code, 0, "the container got mica's SIGPIPE: {out:?}");
    c.assert_gone();
}

/// A created container (init still waiting for start) can be signalled;
/// it is stopped afterwards and can no longer be started.
#[test]
fn kill_created_container() {
    let env = Env::new();
    let c = Ctr::new(&env, "killcreated");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |_| {});
    c.create_ok(&b);
    let pid = c.pid();
    let out = c.mica(&["kill", &c.id, "KILL"]);
    assert!(out.ok(), "kill of a created container: {out:?}");
    let st = c.wait_status("stopped");
    assert_eq!(st["pid"], 0, "{st}");
    assert!(wait_dead(pid, STATE_TIMEOUT));
    assert_fails_with(
        &c.mica(&["start", &c.id]),
        "stopped",
        "start of a killed created container",
    );
    let out = c.mica(&["delete", &c.id]);
    assert!(out.ok(), "delete of the stopped container: {out:?}");
    c.assert_gone();
}

/// A created container's init, though its pid namespace's init, dies of
/// the default `kill` (TERM) while it waits for `start`, as runc's does
/// (the kernel spares an init from signals it has no handler for).
#[test]
fn term_stops_a_created_container() {
    let env = Env::new();
    let c = Ctr::new(&env, "termcreated");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |_| {});
    c.create_ok(&b);
    let pid = c.pid();
    let out = c.mica(&["kill", &c.id]);
    assert!(out.ok(), "kill of a created container: {out:?}");
    c.wait_status("stopped");
    assert!(wait_dead(pid, STATE_TIMEOUT));
    c.force_delete_gone();
}

#[test]
fn kill_invalid_signal_is_an_error() {
    let env = Env::new();
    let c = Ctr::new(&env, "killnope");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf"], |_| {});
    let pid = c.start_bundle(&b);
    for sig in ["NOPE", "SIGNOPE", "65", "99999", ""] {
        let out = c.mica(&["kill", &c.id, sig]);
        assert_fails_with(&out, "signal", &format!("kill {sig:?}"));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(pid), "an invalid signal killed the container");
    assert_eq!(c.status(), "running");
    // 0 only checks that the process is there (runc's `kill ID 0`).
    let out = c.mica(&["kill", &c.id, "0"]);
    assert!(out.ok(), "kill 0 of a running container: {out:?}");
    assert!(alive(pid), "kill 0 killed the container");
}

#[test]
fn kill_all_kills_exec_processes_too() {
    let env = Env::new();
    let c = Ctr::new(&env, "killall");
    let b = c.bundle(
        "busybox",
        &[PROBE, "--sleep", "inf", "--ignore-term"],
        |_| {},
    );
    let pid = c.start_bundle(&b);
    let pf = env.tmp.path().join("extra.pid");
    let out = c.exec_sleeper(&pf);
    assert!(out.ok(), "exec -d: {out:?}");
    let (_, extra) = read_pid_file(&pf);
    assert!(alive(extra), "exec'd process {extra} not alive");
    assert_ne!(extra, pid);

    let out = c.mica(&["kill", "--all", &c.id, "KILL"]);
    assert!(out.ok(), "kill --all: {out:?}");
    assert!(
        wait_dead(extra, STATE_TIMEOUT),
        "kill --all left the exec'd process {extra} alive"
    );
    assert!(
        wait_dead(pid, STATE_TIMEOUT),
        "kill --all left the init {pid} alive"
    );
    c.wait_status("stopped");
}

// ---------------------------------------------------------------------------
// 4. run
// ---------------------------------------------------------------------------

#[test]
fn run_returns_exit_code_and_cleans_up() {
    let env = Env::new();
    for code in [0, 3, 42] {
        let c = Ctr::new(&env, "runexit");
        let code_s = code.to_string();
        let b = c.bundle("busybox", &[PROBE, "--exit", &code_s], |_| {});
        let out = c.mica(&["run", "--bundle", b.to_str().unwrap(), &c.id]);
        assert_eq!(out.code, code, "run --exit {code}: {out:?}");
        assert_eq!(out.stderr, "", "run printed on stderr");
        let j = parse_probe(&out.stdout);
        assert_eq!(j["pid"], 1, "the probe is the container's init: {j}");
        assert_eq!(j["args"], json!([PROBE, "--exit", code_s]));
        c.assert_gone();
    }
    env.assert_state_empty();
}

/// Containers started and removed at once on one state root: each takes a
/// removed container's directory from `<root>/@free` or makes one, never one
/// another run holds (the reuse races), and all of them go back there.
#[test]
fn concurrent_runs_share_the_state_root() {
    let env = Env::new();
    let b = env.bundle("busybox", &["/bin/true"], |_| {});
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..8 {
                    let (code, out, err) = env.run(&b);
                    assert_eq!(code, 0, "stdout={out} stderr={err}");
                    assert_eq!(err, "", "run printed on stderr");
                }
            });
        }
    });
    env.assert_state_empty();
    let waiting = std::fs::read_dir(env.root.join("@free")).unwrap().count();
    assert!(
        (1..=8).contains(&waiting),
        "{waiting} directories in @free after 4 at a time"
    );
    let out = env.mica(&["list", "-q"]);
    assert!(out.status.success(), "list: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "list shows @free");
}

/// `run --keep` (runc's flag) leaves the stopped container for `state` and
/// `delete` instead of deleting it.
#[test]
fn run_keep_leaves_the_stopped_container() {
    let env = Env::new();
    let c = Ctr::new(&env, "runkeep");
    let b = c.bundle("busybox", &[PROBE, "--quiet", "--exit", "3"], |_| {});
    let out = c.mica(&["run", "--keep", "--bundle", b.to_str().unwrap(), &c.id]);
    assert_eq!(out.code, 3, "run --keep: {out:?}");
    assert_eq!(c.status(), "stopped");
    let out = c.mica(&["delete", &c.id]);
    assert!(out.ok(), "delete of the kept container: {out:?}");
    c.assert_gone();
}

/// An error is one line whatever the input carries (a path, a tar header's
/// name with a newline): a caller reading "mica: ..." lines sees no forged one.
#[test]
fn errors_are_one_line() {
    let env = Env::new();
    let store = env.tmp.path().join("store");
    let out = env.mica(&[
        "--store",
        store.to_str().unwrap(),
        "image",
        "import",
        "/nonexistent\nmica: injected",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("mica: ") && err.contains("\\nmica: injected"),
        "{err}"
    );
}

/// A setup step that fails while a message of the parent is unread (the
/// child exits, the socket is reset) still reports the step, every time.
#[test]
fn setup_errors_survive_a_reset_socket() {
    let env = Env::new();
    let not_a_ns = env.tmp.path().join("not-a-namespace");
    std::fs::write(&not_a_ns, b"x").unwrap();
    let p = not_a_ns.to_str().unwrap().to_string();
    let c = Ctr::new(&env, "nsfile");
    let b = c.bundle("busybox", &[PROBE], move |cfg| {
        let ns = cfg["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
        ns.push(json!({"type": "network", "path": p}));
    });
    for i in 0..20 {
        let out = c.mica(&["run", "--bundle", b.to_str().unwrap(), &c.id]);
        assert_ne!(out.code, 0, "#{i}: {out:?}");
        assert!(out.stderr.contains("join namespace"), "#{i}: {out:?}");
        c.assert_gone();
    }
}

/// A memory limit too small to set the container up: the kernel kills the
/// process during setup or refuses it memory, and the error says so (not a
/// socket error). `run` (the child alone, reporting into mica's memory)
/// and `create` (the child reporting over the socket) both.
#[test]
fn a_process_killed_during_setup_is_named() {
    let env = Env::new();
    for cmd in ["run", "create"] {
        let c = Ctr::new(&env, &format!("oomsetup-{cmd}"));
        let b = c.bundle("busybox", &[PROBE], |cfg| {
            cfg["linux"]["resources"] = json!({"memory": {"limit": 4096}});
        });
        let out = c.mica(&[cmd, "--bundle", b.to_str().unwrap(), &c.id]);
        assert_ne!(out.code, 0, "{out:?}");
        let killed = out.stderr.contains("killed by signal 9 during setup");
        let refused = out
            .stderr
            .contains("out of memory (the memory limit may be too low");
        assert!(
            (killed || refused) && out.stderr.contains("memory"),
            "{cmd}: {out:?}"
        );
        c.assert_gone();
    }
}

#[test]
fn run_detached_keeps_running() {
    let env = Env::new();
    let c = Ctr::new(&env, "rund");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |_| {});
    let pid_file = env.tmp.path().join("rund.pid");
    let out = c.mica(&[
        "run",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--bundle",
        b.to_str().unwrap(),
        &c.id,
    ]);
    assert_eq!(out.code, 0, "run -d: {out:?}");
    assert_eq!(out.stderr, "");
    let st = c.state();
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert_eq!(read_pid_file(&pid_file).0, pid.to_string());
    assert!(alive(pid));
    assert_eq!(cmdline(pid), [PROBE, "--sleep", "inf", "--quiet"]);
    let out = c.mica(&["delete", "--force", &c.id]);
    assert!(out.ok(), "delete --force: {out:?}");
    assert!(wait_dead(pid, STATE_TIMEOUT));
    c.assert_gone();
}

/// `run -d` returns once the process has exec'd (runc's create + start
/// does): a slow startContainer hook, run between Ready and the exec,
/// makes an early return certain.
#[test]
fn run_detached_returns_after_the_exec() {
    let env = Env::new();
    let c = Ctr::new(&env, "rundexec");
    let b = c.bundle(
        "busybox",
        &[PROBE, "--sleep", "inf", "--quiet"],
        slow_start_hook,
    );
    let out = c.mica(&["run", "-d", "--bundle", b.to_str().unwrap(), &c.id]);
    assert_eq!(out.code, 0, "run -d: {out:?}");
    let pid = c.pid();
    assert_eq!(
        cmdline(pid),
        [PROBE, "--sleep", "inf", "--quiet"],
        "run -d returned before the exec"
    );
    let out = c.mica(&["delete", "--force", &c.id]);
    assert!(out.ok(), "delete --force: {out:?}");
    c.assert_gone();
}

// ---------------------------------------------------------------------------
// 5. exec
// ---------------------------------------------------------------------------

const HOSTNAME: &str = "lifecycle-exec";

fn exec_container<'a>(env: &'a Env, prefix: &str) -> (Ctr<'a>, i32) {
    let c = Ctr::new(env, prefix);
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |cfg| {
        cfg["hostname"] = json!(HOSTNAME);
    });
    let pid = c.start_bundle(&b);
    (c, pid)
}

#[test]
fn exec_joins_the_container() {
    let env = Env::new();
    let (c, pid) = exec_container(&env, "exec");
    let out = c.mica(&["exec", &c.id, "--", PROBE]);
    assert_eq!(out.code, 0, "exec: {out:?}");
    assert_eq!(out.stderr, "");
    let j = parse_probe(&out.stdout);
    assert_eq!(j["errors"], json!([]), "{j}");
    assert_eq!(j["hostname"], HOSTNAME, "{j}");
    for ns in ["pid", "mnt", "uts", "ipc", "net", "cgroup"] {
        assert_eq!(
            j["namespaces"][ns],
            json!(ns_link(pid, ns)),
            "exec'd process is not in the init's {ns} namespace: {j}"
        );
    }
    assert_ne!(
        j["pid"], 1,
        "exec'd process must not be the container's pid 1"
    );
    // A session of its own (as runc): the caller's terminal is out of reach.
    assert_eq!(j["sid"], j["pid"], "exec'd process leads no session: {j}");
    assert_eq!(j["args"], json!([PROBE]));
    // The init is unaffected.
    assert_eq!(c.status(), "running");
    assert!(alive(pid));

    let out = c.mica(&["exec", &c.id, "--", PROBE, "--quiet", "--exit", "5"]);
    assert_eq!(out.code, 5, "exec --exit 5: {out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "");
}

/// `--cap` takes runc's form and the bare name; both reach the process.
#[test]
fn exec_adds_capabilities() {
    let env = Env::new();
    let (c, _) = exec_container(&env, "execcap");
    let out = c.mica(&[
        "exec",
        "--cap",
        "CAP_SYS_ADMIN",
        "--cap",
        "net_raw",
        &c.id,
        "--",
        PROBE,
    ]);
    assert_eq!(out.code, 0, "exec: {out:?}");
    let j = parse_probe(&out.stdout);
    for set in ["bounding", "effective", "permitted"] {
        let caps = j["caps"][set].to_string();
        assert!(
            caps.contains("CAP_SYS_ADMIN") && caps.contains("CAP_NET_RAW"),
            "{set}: {caps}"
        );
    }
    let out = c.mica(&["exec", "--cap", "CAP_NO_SUCH", &c.id, "--", PROBE]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("unknown capability"), "{out:?}");
}

#[test]
fn exec_env_cwd_user() {
    let env = Env::new();
    let (c, _) = exec_container(&env, "execopts");
    let out = c.mica(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        &c.id,
        "--",
        PROBE,
    ]);
    assert_eq!(out.code, 0, "exec: {out:?}");
    let j = parse_probe(&out.stdout);
    assert!(
        j["env"].as_array().unwrap().contains(&json!("FOO=bar")),
        "{j}"
    );
    // The config's env is kept (with the mark).
    assert!(
        j["env"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("{MARK}={}", c.id))),
        "{j}"
    );
    assert_eq!(j["cwd"], "/tmp", "{j}");
    assert_eq!(
        (
            j["uid"].clone(),
            j["euid"].clone(),
            j["gid"].clone(),
            j["egid"].clone()
        ),
        (json!(1000), json!(1000), json!(1000), json!(1000)),
        "{j}"
    );
    // HOME of the exec'd user, from the container's /etc/passwd (runc's).
    assert!(
        j["env"]
            .as_array()
            .unwrap()
            .contains(&json!("HOME=/home/user")),
        "{j}"
    );
}

/// exec looks HOME up in the container's /etc/passwd, which the container
/// controls: a FIFO planted there is not opened (exec would block on it).
#[test]
fn exec_does_not_open_a_planted_fifo() {
    use std::os::unix::fs::FileTypeExt;
    let env = Env::new();
    let c = Ctr::new(&env, "execfifo");
    let b = c.bundle(
        "busybox",
        &["/bin/sh", "-c", "mkfifo /etc/passwd && exec sleep 1000"],
        |cfg| {
            cfg["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "/etc",
                "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755"]}));
        },
    );
    let pid = c.start_bundle(&b);
    let planted = PathBuf::from(format!("/proc/{pid}/root/etc/passwd"));
    let deadline = Instant::now() + STATE_TIMEOUT;
    while !std::fs::symlink_metadata(&planted).is_ok_and(|m| m.file_type().is_fifo()) {
        assert!(
            Instant::now() < deadline,
            "no FIFO at {}",
            planted.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = c.mica(&["exec", &c.id, "--", PROBE]);
    assert_eq!(out.code, 0, "exec: {out:?}");
    let j = parse_probe(&out.stdout);
    assert!(
        j["env"].as_array().unwrap().contains(&json!("HOME=/")),
        "{j}"
    );
    c.force_delete_gone();
}

#[test]
fn exec_process_json() {
    let env = Env::new();
    let (c, pid) = exec_container(&env, "execproc");
    let pj = env.tmp.path().join("process.json");
    let process = json!({
        "terminal": false,
        "user": {"uid": 65534, "gid": 65534},
        "args": [PROBE, "--exit", "7"],
        "env": ["PATH=/bin:/usr/bin", "FROM_PROCESS_JSON=1"],
        "cwd": "/home/user"
    });
    std::fs::write(&pj, serde_json::to_vec(&process).unwrap()).unwrap();
    let out = c.mica(&["exec", "--process", pj.to_str().unwrap(), &c.id]);
    assert_eq!(out.code, 7, "exec --process: {out:?}");
    let j = parse_probe(&out.stdout);
    assert_eq!(j["args"], json!([PROBE, "--exit", "7"]), "{j}");
    assert_eq!(j["cwd"], "/home/user", "{j}");
    assert_eq!(j["uid"], 65534, "{j}");
    assert_eq!(j["gid"], 65534, "{j}");
    assert!(
        j["env"]
            .as_array()
            .unwrap()
            .contains(&json!("FROM_PROCESS_JSON=1")),
        "{j}"
    );
    assert_eq!(j["namespaces"]["pid"], json!(ns_link(pid, "pid")));
    assert_eq!(j["hostname"], HOSTNAME);

    // A process.json that is not JSON: one clean error line.
    std::fs::write(&pj, b"{ nope").unwrap();
    let out = c.mica(&["exec", "--process", pj.to_str().unwrap(), &c.id]);
    assert_fails_with(&out, "process.json", "exec --process with bad JSON");
    assert_eq!(c.status(), "running");
}

#[test]
fn exec_detached_writes_pid_file() {
    let env = Env::new();
    let (c, pid) = exec_container(&env, "execd");
    let pf = env.tmp.path().join("exec.pid");
    let out = c.exec_sleeper(&pf);
    assert_eq!(out.code, 0, "exec -d: {out:?}");
    assert_eq!(out.stderr, "");
    let (raw, epid) = read_pid_file(&pf);
    assert_eq!(raw, epid.to_string());
    assert!(alive(epid), "exec -d process {epid} is not alive");
    assert_ne!(epid, pid);
    assert_eq!(cmdline(epid), [PROBE, "--sleep", "inf", "--quiet"]);
    assert_eq!(ns_link(epid, "pid"), ns_link(pid, "pid"));
    assert_eq!(ns_link(epid, "mnt"), ns_link(pid, "mnt"));
    // delete --force takes it down with the container (pid namespace).
    let out = c.mica(&["delete", "--force", &c.id]);
    assert!(out.ok(), "{out:?}");
    assert!(
        wait_dead(epid, STATE_TIMEOUT),
        "exec'd process {epid} survived delete --force"
    );
    c.assert_gone();
}

/// `exec -d` returns once the process runs its command, as runc's does: an
/// execve that fails after every check passed (here E2BIG: one argument over
/// the kernel's 128 KiB limit) is mica's error and exit code, and no pid file
/// names a process that never ran the command.
#[test]
fn exec_detached_reports_a_failed_execve() {
    let env = Env::new();
    let (c, pid) = exec_container(&env, "execfail");
    let pf = env.tmp.path().join("fail.pid");
    let process = env.tmp.path().join("process.json");
    let huge = "x".repeat(200 * 1024);
    std::fs::write(
        &process,
        json!({
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": [PROBE, huge],
            "env": ["PATH=/usr/bin:/bin"],
            "cwd": "/",
        })
        .to_string(),
    )
    .unwrap();
    let out = c.mica(&[
        "exec",
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        "--process",
        process.to_str().unwrap(),
        &c.id,
    ]);
    // runc's exit code for its own exec failures: not one the process could give.
    assert_eq!(out.code, 255, "exec -d of a failing execve: {out:?}");
    assert!(
        out.stderr.contains("argument list too long") && out.stderr.lines().count() == 1,
        "{out:?}"
    );
    assert!(
        !pf.exists(),
        "pid file written for a process that never ran"
    );
    assert!(alive(pid), "the container's init died with the failed exec");
    c.force_delete_gone();
}

/// An execve that fails for a file that is there (a script whose
/// interpreter is missing: ENOENT) says so, without a "not found" lookup
/// message about the file itself.
#[test]
fn exec_reports_a_missing_interpreter() {
    let env = Env::new();
    let c = Ctr::new(&env, "execinterp");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |cfg| {
        cfg["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]}),
        );
    });
    c.start_bundle(&b);
    let out = c.mica(&[
        "exec",
        &c.id,
        "--",
        "/bin/sh",
        "-c",
        "printf '#!/no/such/interpreter\\n' > /tmp/s && chmod +x /tmp/s",
    ]);
    assert_eq!(out.code, 0, "write the script: {out:?}");
    let out = c.mica(&["exec", &c.id, "--", "/tmp/s"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        "mica: exec /tmp/s: no such file or directory",
        "{out:?}"
    );
    c.force_delete_gone();
}

/// exec must work every time, not most of the time (the pid namespace is
/// joined through a second fork: a race there shows up only over many runs).
#[test]
fn exec_is_reliable() {
    let env = Env::new();
    let (c, pid) = exec_container(&env, "execrep");
    let mut failures = Vec::new();
    for i in 0..20 {
        let out = c.mica(&["exec", &c.id, "--", PROBE, "--quiet", "--exit", "4"]);
        if out.code != 4 || !out.stderr.is_empty() {
            failures.push(format!("exec #{i}: {out:?}"));
        }
    }
    for i in 0..20 {
        let pf = env.tmp.path().join(format!("rep-{i}.pid"));
        let out = c.mica(&[
            "exec",
            "-d",
            "--pid-file",
            pf.to_str().unwrap(),
            &c.id,
            "--",
            PROBE,
            "--quiet",
        ]);
        if !out.ok() || !out.stderr.is_empty() || !pf.exists() {
            failures.push(format!("exec -d #{i}: {out:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 40 execs failed: {failures:#?}",
        failures.len()
    );
    assert_eq!(c.status(), "running");
    assert!(alive(pid));
}

#[test]
fn exec_into_stopped_container_fails() {
    let env = Env::new();
    let c = Ctr::new(&env, "execstopped");
    let b = c.bundle("busybox", &[PROBE, "--quiet"], |_| {});
    c.create_ok(&b);
    c.start_ok();
    c.wait_status("stopped");
    let out = c.mica(&["exec", &c.id, "--", PROBE]);
    assert_fails_with(&out, "stopped", "exec into a stopped container");
    assert_eq!(out.code, 255, "exec's own failure (runc's code): {out:?}");
    assert_eq!(out.stdout, "");
    let out = c.mica(&["exec", &c.id]);
    assert_ne!(out.code, 0, "exec without a command: {out:?}");
}

// ---------------------------------------------------------------------------
// 6. ps and list
// ---------------------------------------------------------------------------

fn ps_json(c: &Ctr) -> Vec<i32> {
    let out = c.mica(&["ps", "--format", "json", &c.id]);
    assert!(out.ok(), "ps: {out:?}");
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("ps output is not a JSON list of pids ({e}): {out:?}"))
}

#[test]
fn ps_lists_container_processes() {
    let env = Env::new();
    let (c, pid) = exec_container(&env, "ps");
    assert_eq!(
        ps_json(&c),
        vec![pid],
        "ps of a container with only its init"
    );
    let pf = env.tmp.path().join("ps-extra.pid");
    let out = c.exec_sleeper(&pf);
    assert!(out.ok(), "{out:?}");
    let (_, extra) = read_pid_file(&pf);
    let mut got = ps_json(&c);
    got.sort();
    let mut want = vec![pid, extra];
    want.sort();
    assert_eq!(got, want, "ps after exec -d");
    // The table is the host's `ps -ef` (runc's), filtered to the container.
    let out = c.mica(&["ps", &c.id]);
    assert!(out.ok(), "{out:?}");
    let mut lines = out.stdout.lines();
    let header: Vec<_> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header.first(), Some(&"UID"), "{out:?}");
    let col = header
        .iter()
        .position(|f| *f == "PID")
        .expect("a PID column");
    let mut shown: Vec<i32> = lines
        .map(|l| l.split_whitespace().nth(col).unwrap().parse().unwrap())
        .collect();
    shown.sort();
    assert_eq!(shown, want, "{out:?}");
    // ps options after the id go to ps, as runc passes them.
    let out = c.mica(&["ps", &c.id, "--", "-o", "pid,comm"]);
    assert!(out.ok(), "{out:?}");
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["PID", "COMMAND"],
        "{out:?}"
    );
    let mut shown: Vec<i32> = lines
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    shown.sort();
    assert_eq!(shown, want, "{out:?}");
    // A ps that fails is one line and a non-zero exit.
    let out = c.mica(&["ps", &c.id, "--", "--no-such-ps-option"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.starts_with("mica: ps --no-such-ps-option"),
        "{out:?}"
    );
}

#[test]
fn list_shows_containers() {
    let env = Env::new();
    let a = Ctr::new(&env, "lista");
    let ba = a.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |_| {});
    a.create_ok(&ba);
    let apid = a.pid();
    let b = Ctr::new(&env, "listb");
    let bb = b.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |_| {});
    let bpid = b.start_bundle(&bb);

    let out = mica(&env, &["list", "--format", "json"]);
    assert!(out.ok(), "list: {out:?}");
    let v: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("list json ({e}): {out:?}"));
    let items = v.as_array().expect("list is an array");
    assert_eq!(items.len(), 2, "{v}");
    let find = |id: &str| {
        items
            .iter()
            .find(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {v}"))
    };
    assert_eq!(find(&a.id)["status"], "created");
    assert_eq!(find(&a.id)["pid"], json!(apid));
    assert_eq!(find(&b.id)["status"], "running");
    assert_eq!(find(&b.id)["pid"], json!(bpid));
    assert_eq!(
        find(&b.id)["bundle"],
        json!(std::fs::canonicalize(&bb).unwrap())
    );
    // The state dir's owner by name, as runc's list and state give it.
    assert_eq!(find(&b.id)["owner"], "root", "{v}");

    let out = mica(&env, &["list", "-q"]);
    assert!(out.ok(), "{out:?}");
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort();
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), want, "list -q");

    let out = mica(&env, &["list"]);
    assert!(out.ok(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let cols = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert_eq!(
        cols(lines[0]),
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{out:?}"
    );
    let row = lines
        .iter()
        .find(|l| l.starts_with(&b.id))
        .unwrap_or_else(|| panic!("{} not in {out:?}", b.id));
    let row = cols(row);
    assert_eq!(
        (row[1].as_str(), row[2].as_str(), row[5].as_str()),
        (bpid.to_string().as_str(), "running", "root")
    );
    // Columns line up: the status starts under its heading (the PID column
    // was once not padded).
    let status_at = lines[0].find("STATUS").unwrap();
    let b_line = lines.iter().find(|l| l.starts_with(&b.id)).unwrap();
    assert_eq!(&b_line[status_at..status_at + 7], "running", "{out:?}");
    assert!(out.stdout.contains(&a.id), "{out:?}");

    // Empty root (never created): an empty list, not an error.
    let empty = Env::new();
    let out = mica(&empty, &["list", "--format", "json"]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stdout.trim(), "[]");
}

// ---------------------------------------------------------------------------
// 7. pause / resume
// ---------------------------------------------------------------------------

#[test]
fn pause_and_resume() {
    let env = Env::new();
    let c = Ctr::new(&env, "pause");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |_| {});
    let pid = c.start_bundle(&b);

    let out = c.mica(&["pause", &c.id]);
    assert!(out.ok(), "pause: {out:?}");
    let st = c.state();
    assert_eq!(st["status"], "paused", "{st}");
    assert_eq!(st["pid"], json!(pid));
    // Pausing twice is a wrong transition.
    assert_fails_with(
        &c.mica(&["pause", &c.id]),
        "paused",
        "pause of a paused container",
    );

    let out = c.mica(&["resume", &c.id]);
    assert!(out.ok(), "resume: {out:?}");
    assert_eq!(c.status(), "running");
    assert_fails_with(
        &c.mica(&["resume", &c.id]),
        "running",
        "resume of a running container",
    );

    // Really thawed: it reacts to SIGTERM.
    let out = c.mica(&["kill", &c.id, "TERM"]);
    assert!(out.ok(), "{out:?}");
    c.wait_status("stopped");
    assert!(wait_dead(pid, STATE_TIMEOUT));
}

#[test]
fn delete_force_of_paused_container() {
    let env = Env::new();
    let c = Ctr::new(&env, "pausedel");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |_| {});
    let pid = c.start_bundle(&b);
    let out = c.mica(&["pause", &c.id]);
    assert!(out.ok(), "pause: {out:?}");
    assert_eq!(c.status(), "paused");
    let out = c.mica(&["delete", "--force", &c.id]);
    assert!(out.ok(), "delete --force of a paused container: {out:?}");
    assert!(
        wait_dead(pid, STATE_TIMEOUT),
        "paused init {pid} survived delete --force"
    );
    c.assert_gone();
}

#[test]
fn pause_created_container_fails() {
    let env = Env::new();
    let c = Ctr::new(&env, "pausecreated");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |_| {});
    c.create_ok(&b);
    assert_fails_with(
        &c.mica(&["pause", &c.id]),
        "created",
        "pause of a created container",
    );
    assert_eq!(c.status(), "created");
}

// ---------------------------------------------------------------------------
// 7b. events
// ---------------------------------------------------------------------------

/// The JSON events in a stream's output so far (whole lines only).
fn event_lines(text: &str) -> Vec<Value> {
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    whole
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON event ({e}): {l:?}"))
        })
        .collect()
}

/// `events --interval 100ms` prints a stats event a line, every 100 ms,
/// until the container is killed, then exits 0.
#[test]
fn events_stream_until_the_container_stops() {
    let env = Env::new();
    let c = Ctr::new(&env, "events");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |cfg| {
        cfg["linux"]["resources"]["pids"] = json!({"limit": 10});
    });
    let pid = c.start_bundle(&b);
    let started = Instant::now();
    let stream = c.spawn(&["events", "--interval", "100ms", &c.id]);
    let end = Instant::now() + STATE_TIMEOUT;
    let seen = loop {
        let seen = event_lines(&std::fs::read_to_string(&stream.out).unwrap_or_default());
        if seen.len() >= 3 {
            break seen;
        }
        assert!(
            Instant::now() < end,
            "fewer than 3 events in {STATE_TIMEOUT:?}: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Three at 100 ms intervals, the first after one interval.
    assert!(started.elapsed() >= Duration::from_millis(300), "{seen:?}");
    for e in &seen {
        assert_eq!(e["type"], "stats", "{e}");
        assert_eq!(e["id"], json!(c.id), "{e}");
        assert_eq!(e["data"]["pids"], json!({"current": 1, "limit": 10}), "{e}");
    }
    // Still streaming while the container runs.
    assert!(alive(pid));
    let out = c.mica(&["kill", &c.id, "KILL"]);
    assert!(out.ok(), "kill: {out:?}");
    let out = stream
        .try_finish(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("events did not end with the container: {e}"));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "", "{out:?}");
    // Stats events only (no oom), of this container, the ones seen first.
    let all = event_lines(&out.stdout);
    assert_eq!(all[..seen.len()], seen[..], "{out:?}");
    assert!(
        all.iter()
            .all(|e| e["type"] == "stats" && e["id"] == json!(c.id)),
        "{out:?}"
    );
    assert!(out.stdout.ends_with("}\n"), "{out:?}");
    assert_eq!(c.status(), "stopped");
}

/// `events` of a stopped container fails with one line, as runc's
/// ("container with id ID is not running"); of a created one it works.
#[test]
fn events_of_a_stopped_container_fail() {
    let env = Env::new();
    let c = Ctr::new(&env, "eventsstopped");
    let b = c.bundle("busybox", &[PROBE, "--quiet"], |_| {});
    c.create_ok(&b);
    let out = c.mica(&["events", "--stats", &c.id]);
    assert!(out.ok(), "events --stats of a created container: {out:?}");
    let ev: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON event");
    assert_eq!((&ev["type"], &ev["id"]), (&json!("stats"), &json!(c.id)));
    c.start_ok();
    c.wait_status("stopped");
    let want = format!("container with id {} is not running", c.id);
    for args in [
        vec!["events", "--stats", &c.id],
        vec!["events", &c.id],
        vec!["events", "--interval", "100ms", &c.id],
    ] {
        let out = c.mica(&args);
        assert_fails_with(&out, &want, &args.join(" "));
        assert_eq!(out.stdout, "", "{out:?}");
    }
    // A bad interval is refused before anything is looked at.
    for bad in ["0", "-1s", "5", "soon"] {
        let out = c.mica(&["events", "--interval", bad, &c.id]);
        assert_fails_with(&out, "--interval", &format!("events --interval {bad}"));
    }
    let out = c.mica(&["delete", &c.id]);
    assert!(out.ok(), "{out:?}");
    c.assert_gone();
}

// ---------------------------------------------------------------------------
// 8. hooks
// ---------------------------------------------------------------------------

fn cat_hook(file: &Path) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", file.display())], "timeout": 10})
}

fn read_hook_state(file: &Path) -> Value {
    let s = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("hook output {}: {e}", file.display()));
    serde_json::from_str(&s)
        .unwrap_or_else(|e| panic!("hook got no JSON state on stdin ({e}): {s:?}"))
}

#[test]
fn hooks_get_the_state() {
    let env = Env::new();
    let c = Ctr::new(&env, "hooks");
    let dir = env.tmp.path().join("hooks");
    std::fs::create_dir_all(&dir).unwrap();
    let f = |n: &str| dir.join(n);
    let (prestart, create_runtime, poststart, poststop) = (
        f("prestart"),
        f("createRuntime"),
        f("poststart"),
        f("poststop"),
    );
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |cfg| {
        cfg["hooks"] = json!({
            "prestart": [cat_hook(&prestart)],
            "createRuntime": [cat_hook(&create_runtime)],
            "poststart": [cat_hook(&poststart)],
            "poststop": [cat_hook(&poststop)],
        });
        cfg["annotations"] = json!({"org.mica.test": "hooks"});
    });
    let bundle = json!(std::fs::canonicalize(&b).unwrap());

    c.create_ok(&b);
    let pid = c.pid();
    for file in [&prestart, &create_runtime] {
        let s = read_hook_state(file);
        assert_eq!(s["id"], json!(c.id), "{}: {s}", file.display());
        // runc passes "creating"; mica passes "created" (what the OCI
        // conformance suite checks, see create.rs). Either way: not yet
        // running, and the same for both hooks.
        let status = s["status"].as_str().unwrap_or("");
        assert!(
            status == "creating" || status == "created",
            "{}: {s}",
            file.display()
        );
        assert_eq!(
            s["pid"],
            json!(pid),
            "{}: pid must be the init's: {s}",
            file.display()
        );
        assert_eq!(s["bundle"], bundle, "{}: {s}", file.display());
        assert_eq!(s["ociVersion"], "1.2.0", "{}: {s}", file.display());
        assert_eq!(
            s["annotations"]["org.mica.test"],
            "hooks",
            "{}: {s}",
            file.display()
        );
    }
    assert_eq!(
        read_hook_state(&prestart),
        read_hook_state(&create_runtime),
        "prestart and createRuntime got different states"
    );
    assert!(!poststart.exists(), "poststart ran before start");
    assert!(!poststop.exists(), "poststop ran before delete");

    c.start_ok();
    let s = read_hook_state(&poststart);
    assert_eq!(s["id"], json!(c.id), "{s}");
    assert_eq!(s["status"], "running", "{s}");
    assert_eq!(s["pid"], json!(pid), "{s}");
    assert_eq!(s["bundle"], bundle, "{s}");
    assert!(!poststop.exists(), "poststop ran before delete");

    let out = c.mica(&["kill", &c.id, "KILL"]);
    assert!(out.ok(), "{out:?}");
    c.wait_status("stopped");
    assert!(!poststop.exists(), "poststop ran before delete");
    let out = c.mica(&["delete", &c.id]);
    assert!(out.ok(), "delete: {out:?}");
    let s = read_hook_state(&poststop);
    assert_eq!(s["id"], json!(c.id), "{s}");
    assert_eq!(s["status"], "stopped", "{s}");
    assert_eq!(s["bundle"], bundle, "{s}");
    c.assert_gone();
}

/// The runtime's hooks run in the bundle directory (as runc's do) and get
/// none of the fds the caller left open to mica.
#[test]
fn hooks_run_in_the_bundle_without_the_callers_fds() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let c = Ctr::new(&env, "hookcwd");
    let dir = env.tmp.path().join("hookcwd");
    std::fs::create_dir_all(&dir).unwrap();
    let out = |n: &str| dir.join(n);
    let hook = |n: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("pwd > {0}; ls /proc/$$/fd >> {0}", out(n).display())]})
    };
    let b = c.bundle("busybox", &[PROBE, "--quiet"], |cfg| {
        cfg["hooks"] = json!({"prestart": [hook("prestart")], "poststart": [hook("poststart")],
                              "poststop": [hook("poststop")]});
    });
    let leak = std::fs::File::open("/dev/null").unwrap();
    let leak_fd = std::os::fd::AsRawFd::as_raw_fd(&leak);
    let mut cmd = env.cmd();
    cmd.args(["run", "--bundle", b.to_str().unwrap(), &c.id])
        .stdin(Stdio::null());
    // Leak fd 77 (not close-on-exec) into mica, as a careless caller would.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(leak_fd, 77) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "run: {o:?}");
    let bundle = std::fs::canonicalize(&b).unwrap();
    for n in ["prestart", "poststart", "poststop"] {
        let text = std::fs::read_to_string(out(n)).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(bundle.to_str().unwrap()),
            "{n} hook's cwd"
        );
        let fds: Vec<&str> = lines.collect();
        assert!(
            !fds.contains(&"77"),
            "{n} hook got the caller's fd 77: {fds:?}"
        );
    }
    c.assert_gone();
}

/// createContainer (before pivot, host paths still in view) and
/// startContainer (after pivot, in the container's filesystem) run in the
/// container process and get the state on stdin from the runtime.
#[test]
fn container_hooks_get_the_state() {
    let env = Env::new();
    let c = Ctr::new(&env, "chooks");
    let out_dir = env.tmp.path().join("chooks-out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let create_file = out_dir.join("createContainer");
    let b = c.bundle("busybox", &["/bin/true"], |cfg| {
        cfg["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/tmp",
            "type": "bind",
            "source": out_dir,
            "options": ["rbind", "rw"],
        }));
        let cwd_to = format!("pwd -P > {}/createContainer.cwd", out_dir.display());
        cfg["hooks"] = json!({
            "createContainer": [cat_hook(&create_file), {"path": "/bin/sh", "args": ["sh", "-c", cwd_to]}],
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/startContainer"]}],
        });
    });
    c.create_ok(&b);
    let pid = c.pid();
    // createContainer runs in the rootfs (as runc runs it), not in mica's cwd.
    let cwd = std::fs::read_to_string(out_dir.join("createContainer.cwd")).unwrap();
    let rootfs = std::fs::canonicalize(fixtures().join("busybox")).unwrap();
    assert_eq!(
        cwd.trim_end(),
        rootfs.to_str().unwrap(),
        "createContainer's cwd"
    );
    let s = read_hook_state(&create_file);
    assert_eq!(s["id"], json!(c.id), "{s}");
    assert_eq!(s["pid"], json!(pid), "{s}");
    c.start_ok();
    c.wait_status("stopped");
    let s = read_hook_state(&out_dir.join("startContainer"));
    assert_eq!(s["id"], json!(c.id), "{s}");
    assert_eq!(s["pid"], json!(pid), "{s}");
    let out = c.mica(&["delete", &c.id]);
    assert!(out.ok(), "delete: {out:?}");
    c.assert_gone();
}

#[test]
fn failing_prestart_hook_fails_create() {
    let env = Env::new();
    let c = Ctr::new(&env, "hookfail");
    let after = env.tmp.path().join("createRuntime-ran");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |cfg| {
        cfg["hooks"] = json!({
            "prestart": [{"path": "/bin/false"}],
            "createRuntime": [cat_hook(&after)],
        });
    });
    let out = c.create(&b, &[]);
    assert_fails_with(&out, "hook", "create with a failing prestart hook");
    assert!(!after.exists(), "the hook after the failing one ran");
    c.assert_gone();
    env.assert_state_empty();

    // run too.
    let c = Ctr::new(&env, "hookfailrun");
    let b = c.bundle("busybox", &[PROBE, "--quiet"], |cfg| {
        cfg["hooks"] = json!({"prestart": [{"path": "/bin/false"}]});
    });
    let out = c.mica(&["run", "--bundle", b.to_str().unwrap(), &c.id]);
    assert_fails_with(&out, "hook", "run with a failing prestart hook");
    assert_eq!(out.stdout, "", "the process ran despite the failing hook");
    c.assert_gone();
}

// ---------------------------------------------------------------------------
// 9. Bad input
// ---------------------------------------------------------------------------

/// Each bad config fails `create` and `run` cleanly and leaves nothing.
fn check_bad_config(name: &str, needle: &str, edit: impl Fn(&mut Value, &Env), raw: Option<&str>) {
    let env = Env::new();
    for cmd in ["create", "run"] {
        let c = Ctr::new(&env, &format!("bad-{name}"));
        let b = c.bundle("busybox", &[PROBE, "--quiet"], |cfg| edit(cfg, &env));
        if let Some(text) = raw {
            std::fs::write(b.join("config.json"), text).unwrap();
        }
        let out = c.mica(&[cmd, "--bundle", b.to_str().unwrap(), &c.id]);
        let what = format!("{cmd} with {name}");
        assert_fails_with(&out, needle, &what);
        assert_eq!(out.stdout, "", "{what}: stdout");
        c.assert_gone();
        assert!(
            env.state_entries().is_empty(),
            "{what}: state root has {:?}",
            env.state_entries()
        );
    }
}

#[test]
fn bad_config_malformed_json() {
    check_bad_config(
        "malformed",
        "config.json",
        |_, _| {},
        Some("{\"ociVersion\": \"1.2.0\", \"process\": "),
    );
}

#[test]
fn bad_config_wrong_type() {
    check_bad_config(
        "wrongtype",
        "config.json",
        |cfg, _| cfg["process"]["args"] = json!("notalist"),
        None,
    );
}

/// Newer runtime-spec settings mica does not implement are refused by name.
#[test]
fn bad_config_unimplemented_settings() {
    check_bad_config(
        "intelrdt",
        "linux.intelRdt, process.execCPUAffinity not supported",
        |cfg, _| {
            cfg["linux"]["intelRdt"] = json!({"closID": "guaranteed_group"});
            cfg["process"]["execCPUAffinity"] = json!({"initial": "0"});
        },
        None,
    );
}

#[test]
fn bad_config_oci_version() {
    check_bad_config(
        "version",
        "2.0.0",
        |cfg, _| cfg["ociVersion"] = json!("2.0.0"),
        None,
    );
}

#[test]
fn bad_config_missing_rootfs() {
    check_bad_config(
        "norootfs",
        "rootfs",
        |cfg, env| cfg["root"]["path"] = json!(env.tmp.path().join("no-such-rootfs")),
        None,
    );
}

#[test]
fn bad_config_unknown_namespace_path() {
    check_bad_config(
        "nspath",
        "/proc/999999999/ns/net",
        |cfg, _| {
            let ns = cfg["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "network");
            ns.push(json!({"type": "network", "path": "/proc/999999999/ns/net"}));
        },
        None,
    );
}

#[test]
fn bad_config_missing_command() {
    check_bad_config(
        "nocmd-abs",
        "no such file or directory",
        |cfg, _| cfg["process"]["args"] = json!(["/no/such/command"]),
        None,
    );
    check_bad_config(
        "nocmd-path",
        "executable file not found in $PATH",
        |cfg, _| cfg["process"]["args"] = json!(["no-such-command"]),
        None,
    );
    check_bad_config(
        "noargs",
        "args",
        |cfg, _| cfg["process"]["args"] = json!([]),
        None,
    );
}

/// Paths the spec says must be absolute, an empty mount destination and
/// an option mica does not read are refused, not skipped or passed on.
#[test]
fn bad_config_relative_paths_and_odd_mounts() {
    check_bad_config(
        "relmask",
        "masked path \"proc/kcore\": must be an absolute path",
        |cfg, _| cfg["linux"]["maskedPaths"] = json!(["/proc/keys", "proc/kcore"]),
        None,
    );
    check_bad_config(
        "relro",
        "readonly path \"proc/sys\": must be an absolute path",
        |cfg, _| cfg["linux"]["readonlyPaths"] = json!(["/proc/bus", "proc/sys"]),
        None,
    );
    check_bad_config(
        "emptydest",
        "empty destination",
        |cfg, _| {
            cfg["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "", "type": "tmpfs", "source": "tmpfs"}))
        },
        None,
    );
    check_bad_config(
        "idmapeq",
        "option \"idmap=uids=0-1000-1\" is not supported",
        |cfg, env| {
            cfg["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt", "type": "bind", "source": env.tmp.path(),
                "options": ["rbind", "idmap=uids=0-1000-1"]}))
        },
        None,
    );
}

#[test]
fn bad_config_hostname_without_uts() {
    check_bad_config(
        "nouts",
        "uts",
        |cfg, _| {
            cfg["hostname"] = json!("nouts");
            cfg["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "uts");
        },
        None,
    );
}

#[test]
fn bad_bundle_and_bad_id() {
    let env = Env::new();
    let c = Ctr::new(&env, "nobundle");
    let missing = env.tmp.path().join("no-such-bundle");
    let out = c.mica(&["create", "--bundle", missing.to_str().unwrap(), &c.id]);
    assert_fails_with(&out, "no-such-bundle", "create with a missing bundle");
    c.assert_gone();
    // A valid bundle, so the id is the only thing wrong.
    let b = c.bundle("busybox", &[PROBE, "--quiet"], |_| {});
    for bad in ["bad/id", "..", "a b"] {
        for cmd in ["create", "run"] {
            let out = mica(&env, &[cmd, "--bundle", b.to_str().unwrap(), bad]);
            assert_fails_with(
                &out,
                "invalid container id",
                &format!("{cmd} with id {bad:?}"),
            );
            assert_eq!(out.stdout, "", "{cmd} with id {bad:?} ran the process");
        }
    }
    env.assert_state_empty();
}

// ---------------------------------------------------------------------------
// 10. Crash consistency
// ---------------------------------------------------------------------------

/// xorshift64*: random delays without a crate; the seed is printed on failure.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn crash_loop(cmd: &str) {
    let env = Env::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    // What the kills hit: (finished before the kill, a state dir existed,
    // a container process existed).
    let (mut finished, mut had_dir, mut had_procs) = (0, 0, 0);
    for i in 0..30 {
        let c = Ctr::new(&env, &format!("crash-{cmd}"));
        let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |cfg| {
            cfg["linux"]["cgroupsPath"] = json!(format!("mica-crash-{}", c.id));
        });
        let delay = Duration::from_micros(rng.next() % 30_000);
        let ctx = format!("mica {cmd} SIGKILLed after {delay:?} (iteration {i}, seed {seed})");
        let mut run = c.spawn(&[cmd, "--bundle", b.to_str().unwrap(), &c.id]);
        std::thread::sleep(delay);
        // Our own child, by its pid.
        if run.child.try_wait().unwrap().is_some() {
            finished += 1;
        }
        let _ = run.child.kill();
        let _ = wait_timeout(&mut run.child, CMD_TIMEOUT);
        had_dir += c.state_dir().exists() as usize;
        had_procs += !marked_processes(&c.id).is_empty() as usize;

        let out = spawn_mica(&env, &["delete", "--force", &c.id], None)
            .try_finish(CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert!(
            out.ok() || out.stderr.contains("does not exist"),
            "{ctx}: delete --force failed: {out:?}"
        );
        if !out.ok() {
            assert_one_error_line(&out, &ctx);
        }
        assert!(!c.state_dir().exists(), "{ctx}: state dir left");
        let procs = wait_no_marked_processes(&c.id, Duration::from_secs(2));
        assert!(procs.is_empty(), "{ctx}: processes still alive: {procs:?}");
        let pids_cg = common::own_cgroup("pids").map(|own| {
            Path::new("/sys/fs/cgroup/pids")
                .join(own.trim_start_matches('/'))
                .join(format!("mica-crash-{}", c.id))
        });
        if let Some(p) = pids_cg {
            assert!(!p.exists(), "{ctx}: cgroup {} left", p.display());
        }
        for name in cgroup_names(&c.id) {
            let left = leftover_cgroups(&name);
            assert!(left.is_empty(), "{ctx}: cgroups left: {left:?}");
        }
    }
    println!("mica {cmd}: 30 kills: {finished} after it finished, {had_dir} left a state dir, {had_procs} left processes (seed {seed})");
    // Not vacuous: some kills must have left something for delete --force.
    assert!(
        had_dir > 0,
        "no kill ever left a state dir: the delays miss mica's work"
    );
    env.assert_state_empty();
}

#[test]
fn crash_during_create_leaves_nothing_after_delete_force() {
    crash_loop("create");
}

#[test]
fn crash_during_run_leaves_nothing_after_delete_force() {
    crash_loop("run");
}

// ---------------------------------------------------------------------------
// 11. Parallel runs
// ---------------------------------------------------------------------------

#[test]
fn parallel_runs() {
    const TOTAL: usize = 160;
    const THREADS: usize = 16;
    let env = Env::new();
    let b = env.bundle("probe-only", &[PROBE, "--quiet", "--exit", "0"], |cfg| {
        cfg["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!(format!("{MARK}=parallel-{}", std::process::id())));
        cfg.as_object_mut().unwrap().remove("hostname");
        cfg["linux"].as_object_mut().unwrap().remove("cgroupsPath");
    });
    let next = std::sync::atomic::AtomicUsize::new(0);
    let abort = std::sync::atomic::AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<(String, Result<Out, String>)>();
    let started = Instant::now();
    let mut results = Vec::new();
    let mut hung = false;
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let tx = tx.clone();
            let (env, b, next, abort) = (&env, &b, &next, &abort);
            s.spawn(move || loop {
                if abort.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= TOTAL {
                    return;
                }
                let id = unique("lc-par");
                let r = spawn_mica(
                    env,
                    &["run", "--bundle", b.to_str().unwrap(), &id],
                    Some(&id),
                )
                .try_finish(Duration::from_secs(60));
                let _ = tx.send((id, r));
            });
        }
        drop(tx);
        let deadline = Instant::now() + Duration::from_secs(300);
        while results.len() < TOTAL {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) => results.push(r),
                Err(_) => {
                    hung = true;
                    abort.store(true, std::sync::atomic::Ordering::SeqCst);
                    break;
                }
            }
        }
    });
    let elapsed = started.elapsed();
    // Look for leaks first, then clean up whatever a failed run left, then judge.
    let leaked_root = env.state_entries();
    let leaked_procs: Vec<_> = results
        .iter()
        .flat_map(|(id, _)| wait_no_marked_processes(id, Duration::from_secs(2)))
        .collect();
    let leaked_cgroups: Vec<_> = results
        .iter()
        .flat_map(|(id, _)| leftover_cgroups(&format!("mica-{id}")))
        .collect();
    for (id, _) in &results {
        let _ =
            spawn_mica(&env, &["delete", "--force", id], None).try_finish(Duration::from_secs(15));
        for (pid, _) in marked_processes(id) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for dir in leftover_cgroups(&format!("mica-{id}")) {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    assert!(
        !hung,
        "parallel runs hung: only {} of {TOTAL} finished in {elapsed:?}",
        results.len()
    );
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, r)| !matches!(r, Ok(o) if o.code == 0))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {TOTAL} runs failed, e.g. {:?}",
        failed.len(),
        failed.iter().take(3).collect::<Vec<_>>()
    );
    let quiet: Vec<_> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(o) if !o.stderr.is_empty()))
        .collect();
    assert!(
        quiet.is_empty(),
        "runs printed on stderr: {:?}",
        quiet.iter().take(3).collect::<Vec<_>>()
    );
    assert_eq!(results.len(), TOTAL);
    assert!(
        leaked_root.is_empty(),
        "state root not empty after parallel runs: {leaked_root:?}"
    );
    assert!(
        leaked_procs.is_empty(),
        "processes left by parallel runs: {leaked_procs:?}"
    );
    assert!(
        leaked_cgroups.is_empty(),
        "cgroups left by parallel runs: {leaked_cgroups:?}"
    );
}

// ---------------------------------------------------------------------------
// 12. spec, features, --version
// ---------------------------------------------------------------------------

#[test]
fn spec_writes_readonly_config_and_refuses_overwrite() {
    let env = Env::new();
    let dir = env.tmp.path().join("specdir");
    std::fs::create_dir_all(&dir).unwrap();
    let run_spec = |args: &[&str], cwd: &Path| -> Out {
        let out = env.tmp.path().join(unique("spec-out"));
        let err = env.tmp.path().join(unique("spec-err"));
        let mut child = Command::new(mica_bin())
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let st = wait_timeout(&mut child, CMD_TIMEOUT).expect("mica spec hung");
        Out {
            code: st.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(out).unwrap(),
            stderr: std::fs::read_to_string(err).unwrap(),
        }
    };
    let out = run_spec(&["spec", "--bundle", dir.to_str().unwrap()], env.tmp.path());
    assert!(out.ok(), "spec: {out:?}");
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let cfg: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cfg["root"]["readonly"], true, "{cfg}");
    assert_eq!(cfg["root"]["path"], "rootfs");
    assert_eq!(cfg["ociVersion"], "1.2.0");
    assert_eq!(cfg["process"]["args"], json!(["sh"]));

    let out = run_spec(&["spec", "--bundle", dir.to_str().unwrap()], env.tmp.path());
    assert_fails_with(&out, "exists", "spec over an existing config.json");
    assert_eq!(
        std::fs::read_to_string(dir.join("config.json")).unwrap(),
        text,
        "spec changed the existing config"
    );

    // Default bundle: the current directory.
    let cwd = env.tmp.path().join("speccwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let out = run_spec(&["spec"], &cwd);
    assert!(out.ok(), "spec in cwd: {out:?}");
    assert!(cwd.join("config.json").exists());
    let out = run_spec(&["spec"], &cwd);
    assert_fails_with(&out, "exists", "spec in cwd twice");

    // The default spec is usable as is (with a real rootfs): runs the probe.
    let b = env.tmp.path().join("specrun");
    std::fs::create_dir_all(&b).unwrap();
    assert!(run_spec(&["spec", "--bundle", b.to_str().unwrap()], env.tmp.path()).ok());
    let mut cfg: Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    std::os::unix::fs::symlink(fixtures().join("busybox"), b.join("rootfs")).unwrap();
    cfg["process"]["terminal"] = json!(false);
    cfg["process"]["args"] = json!([PROBE, "--exit", "0"]);
    std::fs::write(b.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    let c = Ctr::new(&env, "specrun");
    let out = c.mica(&["run", "--bundle", b.to_str().unwrap(), &c.id]);
    assert_eq!(out.code, 0, "run of the default spec: {out:?}");
    let j = parse_probe(&out.stdout);
    assert_eq!(j["root_writable"]["errno"], "EROFS", "{j}");
    assert_eq!(j["hostname"], "mica", "{j}");
}

#[test]
fn features_prints_json() {
    let env = Env::new();
    let out = mica(&env, &["features"]);
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stderr, "");
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("features is not JSON ({e}): {out:?}"));
    assert_eq!(v["ociVersionMin"], "1.0.0");
    assert_eq!(v["ociVersionMax"], "1.3.0");
    let hooks = v["hooks"].as_array().unwrap();
    for h in ["prestart", "createRuntime", "poststart", "poststop"] {
        assert!(hooks.contains(&json!(h)), "{h} missing: {v}");
    }
    assert_eq!(v["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    let opts = v["mountOptions"].as_array().unwrap();
    for o in ["rro", "idmap", "ridmap", "tmpcopyup", "rbind"] {
        assert!(opts.contains(&json!(o)), "{o} missing: {v}");
    }
    let ns = v["linux"]["namespaces"].as_array().unwrap();
    for n in ["mount", "pid", "network", "uts", "ipc", "user", "cgroup"] {
        assert!(ns.contains(&json!(n)), "{n} missing: {v}");
    }
    assert!(
        v["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_SYS_ADMIN")),
        "{v}"
    );
}

#[test]
fn version_prints_a_version() {
    let env = Env::new();
    for flag in ["--version", "-v"] {
        let out = mica(&env, &[flag]);
        assert!(out.ok(), "{out:?}");
        // runc's shape: "NAME version X", then "key: value" lines.
        let first = out.stdout.lines().next().unwrap_or("");
        assert_eq!(
            first,
            format!("mica version {}", env!("CARGO_PKG_VERSION")),
            "{out:?}"
        );
        assert!(out.stdout.contains("\nspec: 1.2.0\n"), "{out:?}");
    }
}

/// A prestart hook in a config without a cgroup mount: the child must have
/// consumed the parent's "cgroups joined" message before asking for the hooks.
#[test]
fn prestart_hook_without_cgroup_mount() {
    let env = common::Env::new();
    let out_file = env.tmp.path().join("prestart.json");
    let hook_cmd = format!("cat > {}", out_file.display());
    let b = env.bundle("probe-only", &["/mica-probe", "--quiet"], |c| {
        let mounts: Vec<_> = c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["type"] != "cgroup")
            .cloned()
            .collect();
        c["mounts"] = serde_json::json!(mounts);
        c["hooks"] =
            serde_json::json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", hook_cmd]}]});
    });
    let (code, out, err) = env.run(&b);
    assert_eq!(code, 0, "{out} {err}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert!(state["pid"].as_i64().unwrap() > 0, "{state}");
}

/// `run` of a terminal config without --console-socket: mica holds the pty
/// and proxies it (as runc does). `script` gives mica a terminal of its own.
#[test]
fn run_with_terminal_proxies_the_pty() {
    let env = common::Env::new();
    let b = env.bundle("busybox", &["/bin/sh", "-c", "tty; exit 3"], |c| {
        c["process"]["terminal"] = serde_json::json!(true);
    });
    let id = env.id("tty");
    let cmd = format!(
        "{} --root {} run --bundle {} {}",
        common::mica_bin(),
        env.root.display(),
        b.display(),
        id
    );
    assert_has_tty_under_script(&cmd, 3);
}

/// Run the shell command `cmd` under script(1) (so mica has a terminal of
/// its own); its process must print a pty name and exit with `code`.
fn assert_has_tty_under_script(cmd: &str, code: i32) {
    let out = Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (bsdutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/dev/pts/"),
        "the process has no tty: {text:?}"
    );
    assert_eq!(out.status.code(), Some(code), "{text:?}");
}

/// `exec -t` without --console-socket: as for `run`, mica holds the pty and
/// proxies it, and exits with the process's status.
#[test]
fn exec_with_terminal_proxies_the_pty() {
    let env = Env::new();
    let c = Ctr::new(&env, "ttyx");
    let b = c.bundle("busybox", &[PROBE, "--sleep", "inf", "--quiet"], |_| {});
    c.create_ok(&b);
    c.start_ok();
    let cmd = format!(
        "{} --root {} exec -t {} /bin/sh -c 'tty; exit 4'",
        mica_bin(),
        env.root.display(),
        c.id
    );
    assert_has_tty_under_script(&cmd, 4);
    c.force_delete_gone();
}
