//! mica under real engines: podman (through conmon) and containerd (through
//! its runc v2 shim, driven with `ctr`), offline, with an image built from
//! `rootfs-fixtures/`. Every check runs once with mica and once with runc as
//! the engine's runtime, so the checks themselves are shown to be right.
//!
//! The runtime is `engines/log-runtime.sh`: it records each call's argv and
//! execs the real runtime, so the checks also assert what the engines call.
//!
//! Isolation: podman gets its own `--root`/`--runroot`/`--tmpdir`, config and
//! file locks in a temp dir, and a `--cgroup-parent` of its own; containerd
//! runs on a private socket with private root and state dirs and is stopped
//! by pid. Everything (containers, cgroups, mounts, temp dirs) is removed at
//! the end. Needs root; an engine that is not installed is skipped with a
//! message (`make test-engines` installs them).
//!
//! Run: `make test-engines`, or `cargo test --test engines -- --nocapture`.

mod common;

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CMD_TIMEOUT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------
// Runtimes and their logging wrapper
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runtime {
    Mica,
    Runc,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Runtime::Mica => "mica",
            Runtime::Runc => "runc",
        }
    }

    fn binary(self) -> Option<PathBuf> {
        match self {
            Runtime::Mica => Some(PathBuf::from(common::mica_bin())),
            Runtime::Runc => which("runc"),
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// `engines/log-runtime.sh` copied to `dir/NAME` with its `.env`; returns its path.
fn install_wrapper(
    dir: &Path,
    rt: Runtime,
    extra_args: &str,
    argv_log: &Path,
    configs: &Path,
) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/log-runtime.sh");
    let dst = dir.join(format!("{}-logged", rt.name()));
    std::fs::copy(&src, &dst).expect("copy engines/log-runtime.sh");
    let env = format!(
        "REAL_RUNTIME='{}'\nARGV_LOG='{}'\nEXTRA_ARGS='{}'\nSAVE_CONFIG='{}'\n",
        rt.binary().unwrap().display(),
        argv_log.display(),
        extra_args,
        configs.display()
    );
    // The wrapper sources "$0.env".
    std::fs::write(format!("{}.env", dst.display()), env).unwrap();
    dst
}

/// The calls recorded by the wrapper: one Vec of arguments per call.
fn calls(argv_log: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(argv_log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('\t').skip(1).map(String::from).collect())
        .collect()
}

/// The calls whose arguments contain `words` in this order (not necessarily adjacent).
fn calls_with(argv_log: &Path, words: &[&str]) -> Vec<Vec<String>> {
    calls(argv_log)
        .into_iter()
        .filter(|c| {
            let mut it = c.iter();
            words.iter().all(|w| it.any(|a| a == w))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "exit {} stdout={:?} stderr={:?}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Out {
    fn ok(&self) -> bool {
        self.code == 0
    }
    fn lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect()
    }
}

fn reader(mut r: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

/// Run `cmd` with `stdin` (or /dev/null), killing it after `timeout`. Output
/// that a daemonized grandchild keeps open does not block the return.
fn run_with(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Out {
    run_full(cmd, stdin, Duration::ZERO, timeout)
}

/// `run_with`, writing stdin (and closing it) only after `delay`.
fn run_full(cmd: &mut Command, stdin: Option<&[u8]>, delay: Duration, timeout: Duration) -> Out {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Out {
                code: -1,
                stdout: String::new(),
                stderr: format!("spawn {cmd:?}: {e}"),
            }
        }
    };
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = w.write_all(&data);
        });
    }
    let end = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    // Let the readers drain what is left (bounded: a detached grandchild may hold the pipe).
    let grace = Instant::now() + Duration::from_millis(300);
    while Instant::now() < grace && (Arc::strong_count(&out) > 1 || Arc::strong_count(&err) > 1) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let s = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
    let mut stderr = s(&err);
    if status.is_none() {
        stderr.push_str(&format!("\n[timed out after {timeout:?}: {cmd:?}]"));
    }
    Out {
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout: s(&out),
        stderr,
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Run `cmd` on a pseudo-terminal (`script`), for clients that insist on one.
fn on_pty(cmd: &Command) -> Command {
    let mut line = shell_quote(&cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        line.push(' ');
        line.push_str(&shell_quote(&a.to_string_lossy()));
    }
    let mut c = Command::new("script");
    c.args(["-qec", &line, "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

// ---------------------------------------------------------------------------
// A suite of named checks: all run, failures are collected and reported
// ---------------------------------------------------------------------------

struct Suite {
    name: String,
    ok: usize,
    failed: Vec<String>,
}

impl Suite {
    fn new(name: &str) -> Suite {
        println!("== {name}");
        Suite {
            name: name.to_string(),
            ok: 0,
            failed: Vec::new(),
        }
    }

    fn check(&mut self, what: &str, f: impl FnOnce() -> Result<(), String>) {
        let t = Instant::now();
        let r = std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
            Err(p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()))
        });
        let secs = t.elapsed().as_secs_f64();
        match r {
            Ok(()) => {
                println!("  ok    {}: {what} ({secs:.1}s)", self.name);
                self.ok += 1;
            }
            Err(e) => {
                println!("  FAIL  {}: {what} ({secs:.1}s): {e}", self.name);
                self.failed.push(format!("{what}: {e}"));
            }
        }
    }

    fn finish(self) {
        println!(
            "== {}: {} checks ok, {} failing",
            self.name,
            self.ok,
            self.failed.len()
        );
        assert!(
            self.failed.is_empty(),
            "{}: failing checks:\n  {}",
            self.name,
            self.failed.join("\n  ")
        );
    }
}

fn skip(why: &str) {
    println!("SKIPPED: {why}");
    eprintln!("SKIPPED: {why}");
}

/// Whether the engine's tools are here and we are root; prints why not.
fn can_run(test: &str, rt: Runtime, tools: &[&str]) -> bool {
    if unsafe { libc::geteuid() } != 0 {
        skip(&format!("{test}: needs root"));
        return false;
    }
    for t in tools {
        if which(t).is_none() {
            skip(&format!(
                "{test}: `{t}` is not installed (`make test-engines` installs podman, containerd, runc)"
            ));
            return false;
        }
    }
    if rt.binary().is_none() {
        skip(&format!("{test}: {} is not installed", rt.name()));
        return false;
    }
    true
}

// ---------------------------------------------------------------------------
// The image: the busybox fixture as a one-layer OCI archive
// ---------------------------------------------------------------------------

/// `rootfs-fixtures/build/busybox` plus what images built by engines carry
/// (empty /etc/hostname, /var/tmp) and a /run/marker for tmpcopyup, packed
/// by `rootfs-fixtures/make-image.sh`. Returns the archive's path.
fn build_image(dir: &Path, name: &str) -> PathBuf {
    build_image_with(dir, name, r#"["/bin/sh"]"#, "image.tar")
}

fn build_image_with(dir: &Path, name: &str, cmd: &str, file: &str) -> PathBuf {
    let stage = dir.join("image-rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(common::fixtures().join("busybox"))
        .arg(&stage)
        .status()
        .unwrap();
    assert!(st.success(), "copy the busybox fixture");
    std::fs::create_dir_all(stage.join("var/tmp")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        stage.join("var/tmp"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    std::fs::write(stage.join("etc/hostname"), "").unwrap();
    std::fs::write(stage.join("run/marker"), "copied up\n").unwrap();
    let tar = dir.join(file);
    let out = Command::new("sh")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-fixtures/make-image.sh"))
        .arg(&stage)
        .arg(&tar)
        .arg(name)
        .env("CMD", cmd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make-image.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&stage);
    tar
}

// ---------------------------------------------------------------------------
// Host views: cgroups, namespaces, mounts
// ---------------------------------------------------------------------------

/// Mount points of cgroup hierarchies: (fstype, super options, mount point).
fn cgroup_mounts() -> Vec<(String, String, PathBuf)> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mp = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            let _ = r.next();
            let sopts = r.next().unwrap_or("");
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| (fstype.to_string(), sopts.to_string(), PathBuf::from(mp)))
        })
        .collect()
}

/// Every host directory of `pid`'s cgroups (one per hierarchy), skipping roots.
fn cgroup_dirs(pid: i32) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mounts = cgroup_mounts();
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        if path == "/" {
            continue;
        }
        let m = if ctrls.is_empty() {
            mounts.iter().find(|m| m.0 == "cgroup2")
        } else {
            mounts.iter().find(|m| {
                m.0 == "cgroup" && ctrls.split(',').all(|c| m.1.split(',').any(|o| o == c))
            })
        };
        if let Some(m) = m {
            dirs.push(m.2.join(path.trim_start_matches('/')));
        }
    }
    dirs
}

/// A cgroup file of `pid` for `controller`: the v1 file if a v1 hierarchy
/// has the controller, else the cgroup2 file.
fn cgroup_value(pid: i32, controller: &str, v1_file: &str, v2_file: &str) -> Option<String> {
    let mounts = cgroup_mounts();
    let v1 = mounts
        .iter()
        .find(|m| m.0 == "cgroup" && m.1.split(',').any(|o| o == controller));
    let dirs = cgroup_dirs(pid);
    let (dir, file) = match v1 {
        Some(m) => (dirs.iter().find(|d| d.starts_with(&m.2))?.clone(), v1_file),
        None => {
            let m = mounts.iter().find(|m| m.0 == "cgroup2")?;
            (dirs.iter().find(|d| d.starts_with(&m.2))?.clone(), v2_file)
        }
    };
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Whether `pid`'s cgroup is frozen (v1 freezer or v2 cgroup.freeze).
fn frozen(pid: i32) -> Option<bool> {
    cgroup_value(pid, "freezer", "freezer.state", "cgroup.freeze")
        .map(|v| v == "FROZEN" || v == "1")
}

fn host_netns() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let d = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.starts_with(&d))
        .map(PathBuf::from)
        .collect()
}

/// Unmount (lazily, deepest first) whatever is still mounted below `dir`.
fn unmount_all_under(dir: &Path) {
    let mut mps = mounts_under(dir);
    mps.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for mp in mps {
        let c = std::ffi::CString::new(mp.as_os_str().as_encoded_bytes()).unwrap();
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// rmdir `rel` (relative to each hierarchy's mount point) and everything
/// below it, deepest first; only empty cgroups go (rmdir of a busy one fails).
fn remove_cgroup_tree(rel: &str) {
    fn rm(dir: &Path) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    rm(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    for (_, _, mp) in cgroup_mounts() {
        let d = mp.join(rel.trim_start_matches('/'));
        if d.is_dir() {
            rm(&d);
        }
    }
}

/// The teardown check of every engine suite: no cgroup left under `parent`
/// (in any hierarchy), no mount under `dir`, and `dir` itself gone.
fn nothing_left(parent: &str, dir: &Path) -> Result<(), String> {
    let left = cgroup_tree_exists(parent);
    ensure!(left.is_empty(), "cgroups left: {left:?}");
    let m = mounts_under(dir);
    ensure!(m.is_empty(), "mounts left: {m:?}");
    ensure!(!dir.exists(), "{} left", dir.display());
    Ok(())
}

fn cgroup_tree_exists(rel: &str) -> Vec<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .map(|(_, _, mp)| mp.join(rel.trim_start_matches('/')))
        .filter(|d| d.exists())
        .collect()
}

/// Interface names in `/proc/net/dev` output.
fn interfaces(proc_net_dev: &str) -> BTreeSet<String> {
    proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Host interface names.
fn host_interfaces() -> BTreeSet<String> {
    interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap_or_default())
}

/// The JSON lines of a runtime's `--log` file.
fn json_log(path: &Path) -> Result<Vec<Value>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("not JSON ({e}): {l:?}")))
        .collect()
}

// ---------------------------------------------------------------------------
// podman
// ---------------------------------------------------------------------------

const IMAGE: &str = "localhost/mica-engines:test";
const BLOB_CACHE: &str = "/var/lib/containers/cache/blob-info-cache-v1.boltdb";

struct Podman {
    rt: Runtime,
    dir: common::TempDir,
    argv_log: PathBuf,
    configs: PathBuf,
    /// The runtime's --root (podman passes none: the wrapper adds it).
    state: PathBuf,
    /// `--cgroup-parent` of every container (conmon goes to PARENT/conmon).
    cgroup_parent: String,
    /// Host cgroup dirs of every container started, to prove they are gone.
    cgroups_seen: Mutex<Vec<PathBuf>>,
    blob_cache_existed: bool,
}

impl Podman {
    fn new(rt: Runtime) -> Podman {
        let dir = common::TempDir::new(&format!("podman-{}", rt.name()));
        let d = dir.path().to_path_buf();
        let argv_log = d.join("argv.log");
        let configs = d.join("configs");
        let state = d.join("runtime-state");
        let wrapper = install_wrapper(
            &d,
            rt,
            &format!("--root {}", state.display()),
            &argv_log,
            &configs,
        );
        // podman's root default for RLIMIT_NOFILE/NPROC (1048576) is above this
        // host's hard limits, and raising needs CAP_SYS_RESOURCE, which root
        // lacks here: give the host's own hard limits as the defaults.
        let hard = |r| {
            let mut l = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            unsafe { libc::getrlimit(r, &mut l) };
            l.rlim_max
        };
        // Lowering is always allowed: stay well below whatever podman and conmon inherit.
        let (nofile, nproc) = (
            hard(libc::RLIMIT_NOFILE).min(4096),
            hard(libc::RLIMIT_NPROC).min(4096),
        );
        let name = rt.name();
        let conf = format!(
            r#"[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
lock_type = "file"
tmp_dir = "{d}/tmp"
volume_path = "{d}/volumes"
runtime = "{name}"
runtime_supports_json = ["{name}"]

[engine.runtimes]
{name} = ["{wrapper}"]

[network]
network_config_dir = "{d}/networks"
"#,
            d = d.display(),
            wrapper = wrapper.display()
        );
        std::fs::write(d.join("containers.conf"), conf).unwrap();
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/runroot\"\n",
                d.display()
            ),
        )
        .unwrap();
        Podman {
            rt,
            argv_log,
            configs,
            state,
            cgroup_parent: format!("/mica-engines-{}-podman-{}", std::process::id(), name),
            cgroups_seen: Mutex::new(Vec::new()),
            blob_cache_existed: Path::new(BLOB_CACHE).exists(),
            dir,
        }
    }

    fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .args([
                "--storage-driver",
                "overlay",
                "--cgroup-manager",
                "cgroupfs",
            ])
            .args(["--runtime", self.rt.name(), "--events-backend", "file"])
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--network-config-dir")
            .arg(d.join("networks"));
        c
    }

    fn podman(&self, args: &[&str]) -> Out {
        run_with(self.cmd().args(args), None, CMD_TIMEOUT)
    }

    fn podman_in(&self, args: &[&str], stdin: &[u8]) -> Out {
        run_with(self.cmd().args(args), Some(stdin), CMD_TIMEOUT)
    }

    /// `podman run --rm --cgroup-parent P ARGS` (ARGS: options, image, command).
    fn run(&self, args: &[&str]) -> Out {
        let mut a = vec!["run", "--rm", "--cgroup-parent", &self.cgroup_parent];
        a.extend_from_slice(args);
        self.podman(&a)
    }

    /// `podman run -d --name NAME --cgroup-parent P ARGS`; Err with the output if it fails.
    fn detach(&self, name: &str, args: &[&str]) -> Result<(), String> {
        let mut a = vec![
            "run",
            "-d",
            "--name",
            name,
            "--cgroup-parent",
            &self.cgroup_parent,
        ];
        a.extend_from_slice(args);
        let out = self.podman(&a);
        ensure!(out.ok(), "podman {}: {out:?}", a.join(" "));
        let pid = self.pid(name)?;
        self.cgroups_seen.lock().unwrap().extend(cgroup_dirs(pid));
        Ok(())
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.podman(&["inspect", "-f", format, name])
            .stdout
            .trim()
            .to_string()
    }

    fn pid(&self, name: &str) -> Result<i32, String> {
        let p = self.inspect(name, "{{.State.Pid}}");
        p.parse::<i32>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("no pid for {name}: {p:?}"))
    }

    fn id(&self, name: &str) -> String {
        self.inspect(name, "{{.Id}}")
    }

    fn rm(&self, name: &str) {
        let _ = self.podman(&["rm", "-f", "-t", "0", name]);
    }

    fn status(&self, name: &str) -> String {
        self.inspect(name, "{{.State.Status}}")
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        let _ = self.podman(&["rmi", "-a", "-f"]);
        unmount_all_under(self.dir.path());
        remove_cgroup_tree(&self.cgroup_parent);
        // podman's image copy opens this cache outside --root: leave the host as it was.
        if !self.blob_cache_existed {
            let _ = std::fs::remove_file(BLOB_CACHE);
            let _ = std::fs::remove_dir("/var/lib/containers/cache");
            let _ = std::fs::remove_dir("/var/lib/containers");
        }
        // TempDir's own drop removes the directory.
    }
}

fn podman_suite(rt: Runtime) {
    let test = format!("podman with {}", rt.name());
    if !can_run(&test, rt, &["podman", "conmon"]) {
        return;
    }
    let p = Podman::new(rt);
    let image_tar = build_image(p.dir.path(), IMAGE);
    let out = p.podman(&["load", "-q", "-i", image_tar.to_str().unwrap()]);
    assert!(out.ok(), "podman load: {out:?}");
    let mut s = Suite::new(&test);
    let rt_name = rt.name();

    s.check("podman info runs `RUNTIME --version`", || {
        let out = p.podman(&[
            "info",
            "--format",
            "{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Version}}",
        ]);
        ensure!(
            out.ok() && out.stdout.contains(rt_name),
            "podman info: {out:?}"
        );
        ensure!(
            !calls_with(&p.argv_log, &["--version"]).is_empty(),
            "no --version call: {:?}",
            calls(&p.argv_log)
        );
        Ok(())
    });

    s.check(
        "create/start/delete as podman calls them, JSON log, no systemd cgroups",
        || {
            let out = p.run(&["--network", "none", IMAGE, "true"]);
            ensure!(out.ok(), "{out:?}");
            let creates = calls_with(&p.argv_log, &["create", "--bundle", "--pid-file"]);
            let c = creates.last().ok_or("no create call")?;
            ensure!(
                c.iter().any(|a| a == "--log-format=json") && c.iter().any(|a| a == "--log"),
                "create without --log-format=json --log: {c:?}"
            );
            let id = c.last().unwrap().clone();
            ensure!(
                !calls_with(&p.argv_log, &["start", &id]).is_empty(),
                "no start {id}"
            );
            ensure!(
                !calls_with(&p.argv_log, &["delete", "--force", &id]).is_empty(),
                "no delete --force {id}: {:?}",
                calls(&p.argv_log)
            );
            ensure!(
                calls(&p.argv_log)
                    .iter()
                    .all(|c| !c.iter().any(|a| a.contains("systemd-cgroup"))),
                "a call with --systemd-cgroup"
            );
            let cfg: Value = serde_json::from_slice(
                &std::fs::read(p.configs.join(format!("{id}.json"))).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            let cg = cfg["linux"]["cgroupsPath"].as_str().unwrap_or("");
            ensure!(
                cg.starts_with(&format!("{}/libpod-", p.cgroup_parent)),
                "cgroupsPath {cg:?} (cgroupfs path under the parent expected)"
            );
            Ok(())
        },
    );

    s.check("stdout and stderr kept apart, exit status", || {
        let out = p.run(&[
            "--network",
            "none",
            IMAGE,
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]);
        ensure!(out.code == 3, "exit status: {out:?}");
        ensure!(out.stdout == "out\n", "stdout: {out:?}");
        ensure!(
            out.stderr.contains("err") && !out.stdout.contains("err"),
            "stderr: {out:?}"
        );
        Ok(())
    });

    s.check("stdin (-i)", || {
        let out = p.podman_in(
            &[
                "run",
                "--rm",
                "-i",
                "--cgroup-parent",
                &p.cgroup_parent,
                "--network",
                "none",
                IMAGE,
                "sh",
                "-c",
                "cat; echo end",
            ],
            b"hello from stdin\n",
        );
        ensure!(
            out.ok() && out.stdout == "hello from stdin\nend\n",
            "{out:?}"
        );
        Ok(())
    });

    s.check("a terminal (-t): pty on stdio, console socket", || {
        let out = p.run(&[
            "-t",
            "--network",
            "none",
            IMAGE,
            "sh",
            "-c",
            "tty; test -t 0 && test -t 1 && echo both-ttys",
        ]);
        ensure!(out.ok(), "{out:?}");
        ensure!(
            out.stdout.contains("/dev/pts/") && out.stdout.contains("both-ttys\r\n"),
            "{out:?}"
        );
        let c = calls_with(&p.argv_log, &["create", "--console-socket"]);
        ensure!(!c.is_empty(), "no create --console-socket");
        Ok(())
    });

    s.check(
        "missing command: exit 127, \"no such file or directory\"",
        || {
            let out = p.run(&["--network", "none", IMAGE, "/nonexistent"]);
            ensure!(out.code == 127, "{out:?}");
            ensure!(out.stderr.contains("no such file or directory"), "{out:?}");
            let out = p.run(&["--network", "none", IMAGE, "no-such-command"]);
            ensure!(out.code == 127, "bare name: {out:?}");
            Ok(())
        },
    );

    s.check(
        "non-executable command: exit 126, \"permission denied\"",
        || {
            let out = p.run(&["--network", "none", IMAGE, "/etc/passwd"]);
            ensure!(out.code == 126, "{out:?}");
            ensure!(out.stderr.contains("permission denied"), "{out:?}");
            Ok(())
        },
    );

    s.check(
        "errors reach the --log file as JSON lines (level, msg, time)",
        || {
            let out = p.podman(&[
                "create",
                "--name",
                "logerr",
                "--cgroup-parent",
                &p.cgroup_parent,
                "--network",
                "none",
                IMAGE,
                "/nonexistent",
            ]);
            ensure!(out.ok(), "create: {out:?}");
            let id = p.id("logerr");
            let out = p.podman(&["start", "logerr"]);
            let r = (|| {
                ensure!(
                    out.code != 0 && out.stderr.contains("no such file or directory"),
                    "start: {out:?}"
                );
                let c = calls_with(&p.argv_log, &["create", &id]);
                let c = c.last().ok_or("no create call")?;
                let i = c.iter().position(|a| a == "--log").ok_or("no --log")?;
                let lines = json_log(Path::new(&c[i + 1]))?;
                ensure!(
                    lines.iter().any(|l| l["level"] == "error"
                        && l["msg"]
                            .as_str()
                            .unwrap_or("")
                            .contains("no such file or directory")
                        && l["time"].is_string()),
                    "no error line naming the reason: {lines:?}"
                );
                Ok(())
            })();
            p.rm("logerr");
            r
        },
    );

    s.check(
        "--read-only: read-only root, writable tmpfs with copy-up",
        || {
            let out = p.run(&[
                "--read-only",
                "--network",
                "none",
                IMAGE,
                "sh",
                "-c",
                "touch /x 2>&1; touch /tmp/a /var/tmp/b /run/c && echo writable; cat /run/marker",
            ]);
            ensure!(out.ok(), "{out:?}");
            ensure!(
                out.stdout.contains("Read-only file system"),
                "root writable? {out:?}"
            );
            ensure!(
                out.stdout.contains("writable\n"),
                "tmpfs not writable: {out:?}"
            );
            ensure!(
                out.stdout.contains("copied up"),
                "tmpcopyup lost /run/marker: {out:?}"
            );
            Ok(())
        },
    );

    s.check("memory and pids limits, inside and in the host cgroup", || {
        p.detach("limits", &["--memory", "64m", "--pids-limit", "50", "--network", "none", IMAGE, "sleep", "1000"])?;
        let r = (|| {
            let out = p.podman(&[
                "exec", "limits", "sh", "-c",
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
                 cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
            ]);
            ensure!(out.ok() && out.lines() == ["67108864", "50"], "inside: {out:?}");
            let pid = p.pid("limits")?;
            let mem = cgroup_value(pid, "memory", "memory.limit_in_bytes", "memory.max");
            ensure!(mem.as_deref() == Some("67108864"), "host memory limit {mem:?}");
            let pids = cgroup_value(pid, "pids", "pids.max", "pids.max");
            ensure!(pids.as_deref() == Some("50"), "host pids limit {pids:?}");
            // The limit is enforced: 60 more processes cannot all start.
            let out = p.podman(&[
                "exec", "limits", "sh", "-c",
                "n=0; for i in $(seq 60); do sleep 5 & n=$((n+1)); done 2>/dev/null; echo started",
            ]);
            ensure!(out.code != 0 || out.stderr.contains("fork") || out.stderr.contains("Resource"),
                "60 processes under pids.max=50: {out:?}");
            Ok(())
        })();
        p.rm("limits");
        r
    });

    s.check("env, workdir, user, hostname", || {
        let out = p.run(&[
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            "--hostname",
            "engine-test",
            "--network",
            "none",
            IMAGE,
            "sh",
            "-c",
            "echo $FOO; pwd; id -u; id -g; hostname",
        ]);
        ensure!(
            out.ok() && out.lines() == ["bar", "/tmp", "1000", "1000", "engine-test"],
            "{out:?}"
        );
        Ok(())
    });

    s.check("--network none: own namespace, loopback only", || {
        let out = p.run(&[
            "--network",
            "none",
            IMAGE,
            "sh",
            "-c",
            "readlink /proc/self/ns/net; cat /proc/net/dev",
        ]);
        ensure!(out.ok(), "{out:?}");
        let ns = out.lines().first().cloned().unwrap_or_default();
        ensure!(ns != host_netns(), "host network namespace: {out:?}");
        let ifs = interfaces(out.stdout.split_once('\n').map(|x| x.1).unwrap_or(""));
        ensure!(
            ifs == BTreeSet::from(["lo".to_string()]),
            "interfaces {ifs:?}"
        );
        Ok(())
    });

    s.check("--network host: the host's namespace", || {
        let out = p.run(&[
            "--network",
            "host",
            IMAGE,
            "sh",
            "-c",
            "readlink /proc/self/ns/net; cat /proc/net/dev",
        ]);
        ensure!(out.ok(), "{out:?}");
        ensure!(
            out.lines().first() == Some(&host_netns()),
            "{out:?} vs {}",
            host_netns()
        );
        let ifs = interfaces(out.stdout.split_once('\n').map(|x| x.1).unwrap_or(""));
        ensure!(ifs == host_interfaces(), "interfaces {ifs:?}");
        Ok(())
    });

    s.check(
        "detached container, exec: status, user, env, workdir",
        || {
            p.detach(
                "det",
                &[
                    "-e",
                    "FOO=bar",
                    "-w",
                    "/tmp",
                    "-u",
                    "1000:1000",
                    "--network",
                    "none",
                    IMAGE,
                    "sleep",
                    "1000",
                ],
            )?;
            let out = p.podman(&["exec", "det", "sh", "-c", "id -u; pwd; echo $FOO; exit 5"]);
            ensure!(
                out.code == 5 && out.lines() == ["1000", "/tmp", "bar"],
                "exec: {out:?}"
            );
            let out = p.podman(&[
                "exec",
                "-u",
                "0",
                "-w",
                "/",
                "-e",
                "X=y",
                "det",
                "sh",
                "-c",
                "id -u; pwd; echo $X $FOO",
            ]);
            ensure!(
                out.ok() && out.lines() == ["0", "/", "y bar"],
                "exec -u -w -e: {out:?}"
            );
            let c = calls_with(
                &p.argv_log,
                &["exec", "--pid-file", "--process", "--detach"],
            );
            ensure!(
                !c.is_empty(),
                "no `exec --pid-file F --process F --detach ID` call: {:?}",
                calls(&p.argv_log)
            );
            Ok(())
        },
    );

    s.check("exec with a terminal", || {
        let out = p.podman(&[
            "exec",
            "-t",
            "det",
            "sh",
            "-c",
            "tty; test -t 1 && echo tty-out",
        ]);
        ensure!(
            out.ok() && out.stdout.contains("/dev/pts/") && out.stdout.contains("tty-out\r\n"),
            "{out:?}"
        );
        ensure!(
            !calls_with(&p.argv_log, &["exec", "--tty", "--console-socket"]).is_empty(),
            "no exec --tty --console-socket"
        );
        Ok(())
    });

    s.check("exec errors: 127 and 126 with the reason", || {
        let out = p.podman(&["exec", "det", "/nonexistent"]);
        ensure!(
            out.code == 127 && out.stderr.contains("no such file or directory"),
            "{out:?}"
        );
        let out = p.podman(&["exec", "det", "/etc/passwd"]);
        ensure!(
            out.code == 126 && out.stderr.contains("permission denied"),
            "{out:?}"
        );
        Ok(())
    });

    s.check(
        "exec -d, then the process is in the container (top, cgroup)",
        || {
            let out = p.podman(&["exec", "-d", "det", "sleep", "777"]);
            ensure!(out.ok(), "{out:?}");
            let out = p.podman(&["top", "det", "pid", "args"]);
            ensure!(out.ok() && out.stdout.contains("sleep 777"), "top: {out:?}");
            let pid = p.pid("det")?;
            let procs =
                cgroup_value(pid, "pids", "cgroup.procs", "cgroup.procs").unwrap_or_default();
            ensure!(procs.lines().count() == 2, "cgroup.procs {procs:?}");
            Ok(())
        },
    );

    s.check("pause and unpause (cgroup freezer)", || {
        let pid = p.pid("det")?;
        let out = p.podman(&["pause", "det"]);
        ensure!(out.ok(), "pause: {out:?}");
        ensure!(p.status("det") == "paused", "status {}", p.status("det"));
        ensure!(
            frozen(pid) == Some(true),
            "not frozen on the host: {:?}",
            frozen(pid)
        );
        let out = p.podman(&["unpause", "det"]);
        ensure!(out.ok(), "unpause: {out:?}");
        ensure!(p.status("det") == "running", "status {}", p.status("det"));
        ensure!(frozen(pid) == Some(false), "still frozen");
        let id = p.id("det");
        ensure!(
            !calls_with(&p.argv_log, &["pause", &id]).is_empty(),
            "no pause call"
        );
        ensure!(
            !calls_with(&p.argv_log, &["resume", &id]).is_empty(),
            "no resume call"
        );
        Ok(())
    });

    s.check(
        "stop: PID 1 ignores SIGTERM, SIGKILL after the timeout (137)",
        || {
            let t = Instant::now();
            let out = p.podman(&["stop", "-t", "2", "det"]);
            let took = t.elapsed();
            ensure!(out.ok(), "{out:?}");
            ensure!(
                took >= Duration::from_secs(2) && took < Duration::from_secs(20),
                "stop took {took:?}"
            );
            ensure!(
                p.inspect("det", "{{.State.ExitCode}}") == "137",
                "exit code {}",
                p.inspect("det", "{{.State.ExitCode}}")
            );
            let id = p.id("det");
            ensure!(
                !calls_with(&p.argv_log, &["kill", &id, "15"]).is_empty(),
                "no `kill ID 15`"
            );
            ensure!(
                !calls_with(&p.argv_log, &["kill", &id, "9"]).is_empty(),
                "no `kill ID 9`"
            );
            Ok(())
        },
    );

    s.check("restart after stop", || {
        let out = p.podman(&["start", "det"]);
        ensure!(out.ok(), "start: {out:?}");
        ensure!(p.status("det") == "running", "status {}", p.status("det"));
        let pid = p.pid("det")?;
        p.cgroups_seen.lock().unwrap().extend(cgroup_dirs(pid));
        let out = p.podman(&["exec", "det", "sh", "-c", "echo $FOO"]);
        ensure!(
            out.ok() && out.stdout == "bar\n",
            "exec after restart: {out:?}"
        );
        let out = p.podman(&["restart", "-t", "0", "det"]);
        ensure!(out.ok() && p.status("det") == "running", "restart: {out:?}");
        Ok(())
    });

    s.check("signals reach PID 1 (trap USR1 -> exit 42)", || {
        p.detach(
            "sig",
            &[
                "--network",
                "none",
                IMAGE,
                "sh",
                "-c",
                "trap 'exit 42' USR1; echo ready; while :; do sleep 0.1; done",
            ],
        )?;
        ensure!(
            wait_until(Duration::from_secs(10), || p
                .podman(&["logs", "sig"])
                .stdout
                .contains("ready")),
            "never ready"
        );
        let out = p.podman(&["kill", "-s", "USR1", "sig"]);
        ensure!(out.ok(), "kill: {out:?}");
        let out = p.podman(&["wait", "sig"]);
        ensure!(out.stdout.trim() == "42", "wait: {out:?}");
        let id = p.id("sig");
        ensure!(
            !calls_with(&p.argv_log, &["kill", &id, "10"]).is_empty(),
            "no `kill ID 10`"
        );
        p.rm("sig");
        Ok(())
    });

    s.check("stop: SIGTERM honoured (143)", || {
        p.detach(
            "term",
            &[
                "--network",
                "none",
                IMAGE,
                "/usr/bin/mica-probe",
                "--quiet",
                "--sleep",
                "inf",
            ],
        )?;
        let t = Instant::now();
        let out = p.podman(&["stop", "-t", "30", "term"]);
        ensure!(
            out.ok() && t.elapsed() < Duration::from_secs(10),
            "{out:?} after {:?}",
            t.elapsed()
        );
        let code = p.inspect("term", "{{.State.ExitCode}}");
        ensure!(code == "143", "exit code {code}");
        p.rm("term");
        Ok(())
    });

    s.check(
        "kill --all when the pid namespace is shared (--pid host)",
        || {
            p.detach(
                "all",
                &["--pid", "host", "--network", "none", IMAGE, "sleep", "1000"],
            )?;
            let id = p.id("all");
            let out = p.podman(&["stop", "-t", "10", "all"]);
            ensure!(out.ok(), "stop: {out:?}");
            ensure!(
                !calls_with(&p.argv_log, &["kill", "--all", &id, "15"]).is_empty(),
                "no `kill --all ID 15`: {:?}",
                calls_with(&p.argv_log, &["kill"])
            );
            ensure!(p.status("all") == "exited", "status {}", p.status("all"));
            p.rm("all");
            Ok(())
        },
    );

    s.check("rm leaves nothing: runtime state, cgroups, mounts", || {
        let out = p.podman(&["rm", "-a", "-f", "-t", "0"]);
        ensure!(out.ok(), "rm: {out:?}");
        let out = p.podman(&["ps", "-aq"]);
        ensure!(
            out.ok() && out.stdout.trim().is_empty(),
            "containers left: {out:?}"
        );
        let left = common::state_left(&p.state);
        ensure!(left.is_empty(), "runtime --root still holds {left:?}");
        let seen = p.cgroups_seen.lock().unwrap().clone();
        ensure!(!seen.is_empty(), "no cgroups recorded");
        let left: Vec<_> = seen
            .iter()
            .filter(|d| d.exists() && !d.ends_with("conmon"))
            .collect();
        ensure!(left.is_empty(), "cgroups left: {left:?}");
        let mounts: Vec<_> = mounts_under(p.dir.path())
            .into_iter()
            .filter(|m| m.to_string_lossy().contains("/merged"))
            .collect();
        ensure!(
            mounts.is_empty(),
            "container rootfs mounts left: {mounts:?}"
        );
        Ok(())
    });

    let parent = p.cgroup_parent.clone();
    let dir = p.dir.path().to_path_buf();
    drop(p);
    s.check("teardown: no cgroup, mount or temp dir left", || {
        nothing_left(&parent, &dir)
    });
    s.finish();
}

#[test]
fn podman_with_mica() {
    podman_suite(Runtime::Mica);
}

#[test]
fn podman_with_runc() {
    podman_suite(Runtime::Runc);
}

// ---------------------------------------------------------------------------
// containerd (runc v2 shim) with ctr
// ---------------------------------------------------------------------------

struct Containerd {
    dir: common::TempDir,
    daemon: Option<Child>,
    sock: PathBuf,
    ns: String,
    wrapper: PathBuf,
    argv_log: PathBuf,
    runc_root: PathBuf,
    cgroups_seen: Mutex<Vec<PathBuf>>,
}

impl Containerd {
    /// Start a private containerd (own socket, root, state) and wait for it.
    fn start(rt: Runtime, cri: Option<&str>) -> Containerd {
        let dir = common::TempDir::new(&format!("containerd-{}", rt.name()));
        let d = dir.path().to_path_buf();
        let argv_log = d.join("argv.log");
        let wrapper = install_wrapper(&d, rt, "", &argv_log, &d.join("configs"));
        let sock = d.join("containerd.sock");
        let mut disabled = vec![
            "io.containerd.snapshotter.v1.aufs",
            "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.snapshotter.v1.devmapper",
            "io.containerd.snapshotter.v1.zfs",
            "io.containerd.tracing.processor.v1.otlp",
            "io.containerd.internal.v1.tracing",
        ];
        if cri.is_none() {
            disabled.push("io.containerd.grpc.v1.cri");
        }
        let mut conf = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\ndisabled_plugins = {disabled:?}\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n",
            d = d.display(),
            sock = sock.display(),
        );
        if let Some(extra) = cri {
            conf.push_str(
                &extra
                    .replace("@DIR@", &d.to_string_lossy())
                    .replace("@WRAPPER@", &wrapper.to_string_lossy()),
            );
        }
        std::fs::write(d.join("config.toml"), conf).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            runc_root: d.join("runtime-root"),
            ns: format!("mica-engines-{}-{}", std::process::id(), rt.name()),
            dir,
            daemon: Some(daemon),
            sock,
            wrapper,
            argv_log,
            cgroups_seen: Mutex::new(Vec::new()),
        };
        let up = wait_until(Duration::from_secs(30), || c.ctr(&["version"]).ok());
        assert!(
            up,
            "containerd did not come up: {}",
            std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default()
        );
        c
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(&self.sock)
            .args(["--namespace", &self.ns]);
        c
    }

    fn ctr(&self, args: &[&str]) -> Out {
        run_with(self.cmd().args(args), None, CMD_TIMEOUT)
    }

    /// `ctr run --runc-binary WRAPPER --runc-root DIR OPTS IMAGE ID CMD...`
    fn run_cmd(&self, opts: &[&str], id: &str, cmd: &[&str]) -> Command {
        let mut c = self.cmd();
        c.arg("run")
            .arg("--runc-binary")
            .arg(&self.wrapper)
            .arg("--runc-root")
            .arg(&self.runc_root)
            .args(opts)
            .arg(IMAGE)
            .arg(id)
            .args(cmd);
        c
    }

    fn run(&self, opts: &[&str], id: &str, cmd: &[&str]) -> Out {
        run_with(&mut self.run_cmd(opts, id, cmd), None, CMD_TIMEOUT)
    }

    fn detach(&self, opts: &[&str], id: &str, cmd: &[&str]) -> Result<i32, String> {
        let mut o = vec!["-d"];
        o.extend_from_slice(opts);
        let out = self.run(&o, id, cmd);
        ensure!(out.ok(), "ctr run -d {id}: {out:?}");
        let pid = self.pid(id)?;
        self.cgroups_seen.lock().unwrap().extend(cgroup_dirs(pid));
        Ok(pid)
    }

    /// (pid, status) from `ctr task ls`.
    fn task(&self, id: &str) -> Option<(i32, String)> {
        let out = self.ctr(&["task", "ls"]);
        out.stdout.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[0] == id).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    fn pid(&self, id: &str) -> Result<i32, String> {
        self.task(id)
            .map(|t| t.0)
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("no task {id}"))
    }

    fn status(&self, id: &str) -> String {
        self.task(id).map(|t| t.1).unwrap_or_default()
    }

    fn remove(&self, id: &str) {
        let _ = self.ctr(&["task", "kill", "-a", "-s", "SIGKILL", id]);
        wait_until(Duration::from_secs(10), || {
            !matches!(self.status(id).as_str(), "RUNNING" | "PAUSED")
        });
        let _ = self.ctr(&["task", "rm", "-f", id]);
        let _ = self.ctr(&["container", "rm", id]);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let out = self.ctr(&["container", "ls", "-q"]);
        for id in out.stdout.split_whitespace() {
            self.remove(id);
        }
        let _ = self.ctr(&["images", "rm", IMAGE]);
        let _ = self.ctr(&["namespaces", "rm", &self.ns]);
        // Stop exactly the daemon we started.
        if let Some(mut d) = self.daemon.take() {
            unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(10);
            while d.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            if d.try_wait().ok().flatten().is_none() {
                let _ = d.kill();
                let _ = d.wait();
            }
        }
        unmount_all_under(self.dir.path());
        // containerd's default cgroupsPath is /NAMESPACE/ID.
        remove_cgroup_tree(&format!("/{}", self.ns));
    }
}

fn containerd_suite(rt: Runtime) {
    let test = format!("containerd (ctr, runc v2 shim) with {}", rt.name());
    if !can_run(
        &test,
        rt,
        &["containerd", "ctr", "containerd-shim-runc-v2", "script"],
    ) {
        return;
    }
    let c = Containerd::start(rt, None);
    let image_tar = build_image(c.dir.path(), IMAGE);
    let out = c.ctr(&["images", "import", image_tar.to_str().unwrap()]);
    assert!(out.ok(), "ctr images import: {out:?}");
    let mut s = Suite::new(&test);
    let seq = std::sync::atomic::AtomicUsize::new(0);
    let fresh = |p: &str| {
        format!(
            "{p}-{}",
            seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        )
    };

    s.check(
        "the shim's calls: --root --log --log-format json create/start/delete",
        || {
            let id = fresh("basic");
            let out = c.run(&["--rm"], &id, &["true"]);
            ensure!(out.ok(), "{out:?}");
            let cr = calls_with(
                &c.argv_log,
                &[
                    "--root",
                    "--log",
                    "--log-format",
                    "json",
                    "create",
                    "--bundle",
                    "--pid-file",
                    &id,
                ],
            );
            ensure!(
                !cr.is_empty(),
                "no create with --root --log --log-format json: {:?}",
                calls(&c.argv_log)
            );
            ensure!(
                !calls_with(&c.argv_log, &["start", &id]).is_empty(),
                "no start"
            );
            ensure!(
                !calls_with(&c.argv_log, &["delete", &id]).is_empty(),
                "no delete"
            );
            Ok(())
        },
    );

    s.check("stdout and stderr kept apart, exit status", || {
        let out = c.run(
            &["--rm"],
            &fresh("streams"),
            &["sh", "-c", "echo out; echo err >&2; exit 7"],
        );
        ensure!(out.code == 7 && out.stdout == "out\n", "{out:?}");
        ensure!(
            out.stderr.contains("err") && !out.stdout.contains("err"),
            "{out:?}"
        );
        Ok(())
    });

    s.check("stdin", || {
        // ctr loses an EOF that comes before the task started (with any runtime): write late.
        let out = run_full(
            &mut c.run_cmd(&["--rm"], &fresh("stdin"), &["sh", "-c", "cat; echo end"]),
            Some(b"via ctr\n"),
            Duration::from_millis(1500),
            CMD_TIMEOUT,
        );
        ensure!(out.ok() && out.stdout == "via ctr\nend\n", "{out:?}");
        Ok(())
    });

    s.check("a terminal (-t)", || {
        let cmd = c.run_cmd(
            &["--rm", "-t"],
            &fresh("tty"),
            &["sh", "-c", "tty; test -t 0 && echo both"],
        );
        let out = run_with(&mut on_pty(&cmd), None, CMD_TIMEOUT);
        ensure!(
            out.ok() && out.stdout.contains("/dev/pts/") && out.stdout.contains("both"),
            "{out:?}"
        );
        ensure!(
            !calls_with(&c.argv_log, &["create", "--console-socket"]).is_empty(),
            "no --console-socket"
        );
        Ok(())
    });

    s.check(
        "errors come back from the JSON log: missing / non-executable command",
        || {
            let out = c.run(&["--rm"], &fresh("missing"), &["/nonexistent"]);
            ensure!(out.code != 0, "{out:?}");
            ensure!(
                out.stderr.contains("\"/nonexistent\"")
                    && out.stderr.contains("no such file or directory"),
                "{out:?}"
            );
            ensure!(
                !out.stderr.contains("unable to retrieve OCI runtime error"),
                "log not read: {out:?}"
            );
            let out = c.run(&["--rm"], &fresh("noexec"), &["/etc/passwd"]);
            ensure!(
                out.code != 0 && out.stderr.contains("permission denied"),
                "{out:?}"
            );
            Ok(())
        },
    );

    s.check("--read-only with a writable tmpfs", || {
        let out = c.run(
            &[
                "--rm",
                "--read-only",
                "--mount",
                "type=tmpfs,src=tmpfs,dst=/tmp,options=rw:nosuid:nodev",
            ],
            &fresh("ro"),
            &["sh", "-c", "touch /x 2>&1; touch /tmp/a && echo writable"],
        );
        ensure!(
            out.ok()
                && out.stdout.contains("Read-only file system")
                && out.stdout.contains("writable\n"),
            "{out:?}"
        );
        Ok(())
    });

    s.check("memory limit, inside and in the host cgroup", || {
        let id = fresh("mem");
        // ctr's default spec has no /sys/fs/cgroup: mount it as CRI's default spec does.
        let pid = c.detach(
            &["--memory-limit", "67108864", "--mount", "type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro:nosuid:nodev:noexec"],
            &id,
            &["sleep", "1000"],
        )?;
        let r = (|| {
            let host = cgroup_value(pid, "memory", "memory.limit_in_bytes", "memory.max");
            ensure!(host.as_deref() == Some("67108864"), "host {host:?}");
            let out = c.ctr(&["task", "exec", "--exec-id", "m", &id, "sh", "-c",
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"]);
            ensure!(out.ok() && out.stdout.trim() == "67108864", "inside: {out:?}");
            Ok(())
        })();
        c.remove(&id);
        r
    });

    s.check("env and workdir", || {
        let out = c.run(
            &["--rm", "--env", "FOO=bar", "--cwd", "/tmp"],
            &fresh("env"),
            &["sh", "-c", "echo $FOO; pwd"],
        );
        ensure!(out.ok() && out.lines() == ["bar", "/tmp"], "{out:?}");
        Ok(())
    });

    s.check("network: private (loopback only) and --net-host", || {
        let out = c.run(
            &["--rm"],
            &fresh("netnone"),
            &["sh", "-c", "readlink /proc/self/ns/net; cat /proc/net/dev"],
        );
        ensure!(
            out.ok() && out.lines().first() != Some(&host_netns()),
            "{out:?}"
        );
        let ifs = interfaces(out.stdout.split_once('\n').map(|x| x.1).unwrap_or(""));
        ensure!(ifs == BTreeSet::from(["lo".to_string()]), "{ifs:?}");
        let out = c.run(
            &["--rm", "--net-host"],
            &fresh("nethost"),
            &["readlink", "/proc/self/ns/net"],
        );
        ensure!(out.ok() && out.stdout.trim() == host_netns(), "{out:?}");
        Ok(())
    });

    let det = fresh("det");
    s.check("detached task; exec: status, env, workdir, user", || {
        c.detach(
            &["--env", "FOO=bar", "--cwd", "/tmp"],
            &det,
            &["sleep", "1000"],
        )?;
        ensure!(c.status(&det) == "RUNNING", "status {}", c.status(&det));
        let out = c.ctr(&[
            "task",
            "exec",
            "--exec-id",
            "e1",
            &det,
            "sh",
            "-c",
            "echo $FOO; pwd; id -u; exit 4",
        ]);
        ensure!(
            out.code == 4 && out.lines() == ["bar", "/tmp", "0"],
            "{out:?}"
        );
        let out = c.ctr(&[
            "task",
            "exec",
            "--exec-id",
            "e2",
            "--user",
            "1000",
            "--cwd",
            "/",
            &det,
            "sh",
            "-c",
            "id -u; pwd",
        ]);
        ensure!(out.ok() && out.lines() == ["1000", "/"], "{out:?}");
        ensure!(
            !calls_with(
                &c.argv_log,
                &["exec", "--process", "--detach", "--pid-file", &det]
            )
            .is_empty(),
            "no exec --process --detach --pid-file"
        );
        Ok(())
    });

    s.check("exec with a terminal", || {
        let mut cmd = c.cmd();
        cmd.args(["task", "exec", "--exec-id", "e3", "-t", &det, "tty"]);
        let out = run_with(&mut on_pty(&cmd), None, CMD_TIMEOUT);
        ensure!(out.ok() && out.stdout.contains("/dev/pts/"), "{out:?}");
        ensure!(
            !calls_with(&c.argv_log, &["exec", "--tty", "--console-socket"]).is_empty()
                || !calls_with(&c.argv_log, &["exec", "--console-socket", "--tty"]).is_empty()
                || !calls_with(&c.argv_log, &["exec", "--console-socket"]).is_empty(),
            "no exec --console-socket"
        );
        Ok(())
    });

    s.check("exec error: missing command, reason from the log", || {
        let out = c.ctr(&["task", "exec", "--exec-id", "e4", &det, "/nonexistent"]);
        ensure!(
            out.code != 0 && out.stderr.contains("no such file or directory"),
            "{out:?}"
        );
        Ok(())
    });

    s.check("ps --format json", || {
        let out = c.ctr(&["task", "ps", &det]);
        let pid = c.pid(&det)?;
        ensure!(out.ok() && out.stdout.contains(&pid.to_string()), "{out:?}");
        ensure!(
            !calls_with(&c.argv_log, &["ps", "--format", "json", &det]).is_empty(),
            "no ps --format json"
        );
        Ok(())
    });

    s.check("pause and resume", || {
        let pid = c.pid(&det)?;
        let out = c.ctr(&["task", "pause", &det]);
        ensure!(
            out.ok() && c.status(&det) == "PAUSED",
            "pause: {out:?} {}",
            c.status(&det)
        );
        ensure!(frozen(pid) == Some(true), "not frozen on the host");
        let out = c.ctr(&["task", "resume", &det]);
        ensure!(
            out.ok() && c.status(&det) == "RUNNING",
            "resume: {out:?} {}",
            c.status(&det)
        );
        ensure!(frozen(pid) == Some(false), "still frozen");
        Ok(())
    });

    s.check(
        "stop with a timeout: SIGTERM ignored by PID 1, then SIGKILL",
        || {
            let out = c.ctr(&["task", "kill", "-s", "SIGTERM", &det]);
            ensure!(out.ok(), "kill TERM: {out:?}");
            std::thread::sleep(Duration::from_secs(1));
            ensure!(
                c.status(&det) == "RUNNING",
                "PID 1 died of SIGTERM: {}",
                c.status(&det)
            );
            let out = c.ctr(&["task", "kill", "-s", "SIGKILL", &det]);
            ensure!(out.ok(), "kill KILL: {out:?}");
            ensure!(
                wait_until(Duration::from_secs(10), || c.status(&det) == "STOPPED"),
                "status {}",
                c.status(&det)
            );
            ensure!(
                !calls_with(&c.argv_log, &["kill", &det, "15"]).is_empty(),
                "no kill ID 15"
            );
            ensure!(
                !calls_with(&c.argv_log, &["kill", &det, "9"]).is_empty(),
                "no kill ID 9"
            );
            let out = c.ctr(&["task", "rm", &det]);
            ensure!(out.ok(), "task rm: {out:?}");
            Ok(())
        },
    );

    s.check("restart after stop (new task for the container)", || {
        let out = c.ctr(&["task", "start", "-d", &det]);
        ensure!(out.ok(), "task start: {out:?}");
        ensure!(
            wait_until(Duration::from_secs(10), || c.status(&det) == "RUNNING"),
            "status {}",
            c.status(&det)
        );
        let out = c.ctr(&[
            "task",
            "exec",
            "--exec-id",
            "e5",
            &det,
            "sh",
            "-c",
            "echo $FOO",
        ]);
        ensure!(out.ok() && out.stdout == "bar\n", "{out:?}");
        c.cgroups_seen
            .lock()
            .unwrap()
            .extend(cgroup_dirs(c.pid(&det)?));
        Ok(())
    });

    s.check("kill --all", || {
        let out = c.ctr(&["task", "kill", "-a", "-s", "SIGKILL", &det]);
        ensure!(out.ok(), "{out:?}");
        ensure!(
            wait_until(Duration::from_secs(10), || c.status(&det) == "STOPPED"),
            "status {}",
            c.status(&det)
        );
        ensure!(
            !calls_with(&c.argv_log, &["kill", "--all", &det, "9"]).is_empty(),
            "no kill --all ID 9"
        );
        Ok(())
    });

    s.check("signals reach PID 1 (trap USR1 -> exit 42)", || {
        let id = fresh("sig");
        let mut cmd = c.run_cmd(
            &["--rm"],
            &id,
            &[
                "sh",
                "-c",
                "trap 'exit 42' USR1; echo ready; while :; do sleep 0.1; done",
            ],
        );
        let runner = std::thread::spawn(move || run_with(&mut cmd, None, CMD_TIMEOUT));
        ensure!(
            wait_until(Duration::from_secs(15), || c.status(&id) == "RUNNING"),
            "never running"
        );
        std::thread::sleep(Duration::from_millis(300));
        let out = c.ctr(&["task", "kill", "-s", "SIGUSR1", &id]);
        ensure!(out.ok(), "kill: {out:?}");
        let out = runner.join().unwrap();
        ensure!(out.code == 42, "{out:?}");
        Ok(())
    });

    s.check(
        "delete leaves nothing: runtime root, cgroups, mounts",
        || {
            let out = c.ctr(&["task", "rm", "-f", &det]);
            ensure!(out.ok(), "task rm: {out:?}");
            let out = c.ctr(&["container", "rm", &det]);
            ensure!(out.ok(), "container rm: {out:?}");
            let out = c.ctr(&["container", "ls", "-q"]);
            ensure!(out.stdout.trim().is_empty(), "containers left: {out:?}");
            let root = c.runc_root.join(&c.ns);
            let left = common::state_left(&root);
            ensure!(left.is_empty(), "{} holds {left:?}", root.display());
            let seen = c.cgroups_seen.lock().unwrap().clone();
            ensure!(!seen.is_empty(), "no cgroups recorded");
            let left: Vec<_> = seen.iter().filter(|d| d.exists()).collect();
            ensure!(left.is_empty(), "cgroups left: {left:?}");
            let m: Vec<_> = mounts_under(c.dir.path())
                .into_iter()
                .filter(|m| {
                    m.to_string_lossy()
                        .contains("io.containerd.runtime.v2.task")
                })
                .collect();
            ensure!(m.is_empty(), "rootfs mounts left: {m:?}");
            Ok(())
        },
    );

    let ns = c.ns.clone();
    let dir = c.dir.path().to_path_buf();
    let pid = c.daemon.as_ref().map(|d| d.id() as i32).unwrap_or(0);
    drop(c);
    s.check(
        "teardown: containerd stopped, no cgroup, mount or temp dir left",
        || {
            let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            ensure!(
                st.is_empty() || !st.contains("containerd"),
                "containerd {pid} still there: {st}"
            );
            nothing_left(&format!("/{ns}"), &dir)
        },
    );
    s.finish();
}

#[test]
fn containerd_with_mica() {
    containerd_suite(Runtime::Mica);
}

#[test]
fn containerd_with_runc() {
    containerd_suite(Runtime::Runc);
}

// ---------------------------------------------------------------------------
// Kubernetes CRI: containerd's CRI plugin with a `mica` runtime handler
// ---------------------------------------------------------------------------

const PAUSE_IMAGE: &str = "localhost/mica-pause:test";
const PYTHON: &str = "/usr/bin/python3";

/// The CRI plugin's config: the runtime handler named after the runtime
/// (a RuntimeClass `handler`), its binary the logging wrapper; a local pause
/// image; no CNI (host-network pods); oom_score_adj not below our own
/// (lowering it needs CAP_SYS_RESOURCE, which root lacks on this host).
fn cri_config(rt: Runtime) -> String {
    let h = rt.name();
    format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "@DIR@/cni-bin"
    conf_dir = "@DIR@/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "{h}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{h}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{h}.options]
        BinaryName = "@WRAPPER@"
        Root = "@DIR@/runtime-root"
"#
    )
}

fn cri_suite(rt: Runtime) {
    let test = format!("containerd CRI with the {} runtime handler", rt.name());
    if !can_run(&test, rt, &["containerd", "ctr", "containerd-shim-runc-v2"]) {
        return;
    }
    let grpc = Command::new(PYTHON).args(["-c", "import grpc"]).output();
    if !grpc.map(|o| o.status.success()).unwrap_or(false) {
        skip(&format!("{test}: python3-grpcio is not installed (`make test-engines` installs it; crictl is not packaged in Debian 12)"));
        return;
    }
    let mut c = Containerd::start(rt, Some(&cri_config(rt)));
    c.ns = "k8s.io".into();
    let d = c.dir.path().to_path_buf();
    let image_tar = build_image(&d, IMAGE);
    let out = c.ctr(&["images", "import", image_tar.to_str().unwrap()]);
    assert!(out.ok(), "import: {out:?}");
    // The pod's pause container: the probe sleeping (and exiting on SIGTERM).
    // The image has /etc/resolv.conf, /etc/hosts and /etc/hostname: the CRI
    // sandbox's root is read-only, and mica creates no mountpoint in a
    // read-only root (runc does; registry.k8s.io/pause has none of them).
    let pause = build_image_with(
        &d,
        PAUSE_IMAGE,
        r#"["/usr/bin/mica-probe","--quiet","--sleep","inf"]"#,
        "pause.tar",
    );
    let out = c.ctr(&["images", "import", pause.to_str().unwrap()]);
    assert!(out.ok(), "import pause: {out:?}");
    std::fs::create_dir_all(d.join("logs")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/cri.py");
    let sock = c.sock.clone();
    let cri = |args: &[&str]| -> Out {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(&script).arg("--socket").arg(&sock).args(args);
        run_with(&mut cmd, None, CMD_TIMEOUT)
    };
    let parent = format!("/mica-engines-{}-cri-{}", std::process::id(), rt.name());
    let pod_json = d.join("pod.json");
    let mut s = Suite::new(&test);
    let pod = Mutex::new(String::new());
    let ctr_id = Mutex::new(String::new());
    let cgroups = Mutex::new(Vec::new());

    s.check("CRI Version", || {
        let out = cri(&["version"]);
        ensure!(
            out.ok() && out.stdout.contains("\"runtime_api_version\": \"v1\""),
            "{out:?}"
        );
        Ok(())
    });

    s.check(
        "RunPodSandbox with runtime_handler (a RuntimeClass handler)",
        || {
            let out = cri(&[
                "runp",
                "--name",
                "engines",
                "--uid",
                "uid-1",
                "--namespace",
                "default",
                "--handler",
                rt.name(),
                "--cgroup-parent",
                &parent,
                "--log-dir",
                d.join("logs").to_str().unwrap(),
                "--pod-json-out",
                pod_json.to_str().unwrap(),
            ]);
            ensure!(out.ok() && out.stdout.trim().len() == 64, "runp: {out:?}");
            let id = out.stdout.trim().to_string();
            ensure!(
                !calls_with(&c.argv_log, &["create", "--bundle", &id]).is_empty(),
                "the sandbox was not created through the handler's binary: {:?}",
                calls(&c.argv_log)
            );
            *pod.lock().unwrap() = id;
            Ok(())
        },
    );

    s.check(
        "CreateContainer + StartContainer: running, log, memory limit",
        || {
            let p = pod.lock().unwrap().clone();
            let out = cri(&[
                "create",
                &p,
                "--name",
                "app",
                "--image",
                IMAGE,
                "--env",
                "FOO=bar",
                "--workdir",
                "/tmp",
                "--memory",
                "67108864",
                "--pod-json",
                pod_json.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                "echo started; exec sleep 1000",
            ]);
            ensure!(out.ok(), "create: {out:?}");
            let id = out.stdout.trim().to_string();
            *ctr_id.lock().unwrap() = id.clone();
            let out = cri(&["start", &id]);
            ensure!(out.ok(), "start: {out:?}");
            let out = cri(&["status", &id]);
            ensure!(
                out.ok() && out.stdout.contains("\"RUNNING\""),
                "status: {out:?}"
            );
            let log = d.join("logs/app.log");
            ensure!(
                wait_until(Duration::from_secs(10), || std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("stdout F started")),
                "log {}: {:?}",
                log.display(),
                std::fs::read_to_string(&log)
            );
            let root = c.runc_root.join("k8s.io").join(&id);
            ensure!(
                root.exists(),
                "not in the runtime's --root: {}",
                root.display()
            );
            let pid: i32 = std::fs::read_to_string(root.join("state.json"))
                .ok()
                .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                .and_then(|v| v["init"]["pid"].as_i64().or(v["init_process_pid"].as_i64()))
                .unwrap_or(0) as i32;
            ensure!(pid > 0, "no pid in the runtime state");
            cgroups.lock().unwrap().extend(cgroup_dirs(pid));
            let mem = cgroup_value(pid, "memory", "memory.limit_in_bytes", "memory.max");
            ensure!(
                mem.as_deref() == Some("67108864"),
                "host memory limit {mem:?}"
            );
            Ok(())
        },
    );

    s.check("ExecSync: output, env, workdir, exit status, cgroup seen inside", || {
        let id = ctr_id.lock().unwrap().clone();
        let out = cri(&["exec", &id, "--", "sh", "-c",
            "echo $FOO; pwd; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; exit 3"]);
        ensure!(out.code == 3 && out.lines() == ["bar", "/tmp", "67108864"], "{out:?}");
        ensure!(!calls_with(&c.argv_log, &["exec", "--process", "--detach", &id]).is_empty(), "no exec call");
        Ok(())
    });

    s.check(
        "StopContainer (timeout, then SIGKILL), RemoveContainer",
        || {
            let id = ctr_id.lock().unwrap().clone();
            let t = Instant::now();
            let out = cri(&["stop", &id, "2"]);
            ensure!(out.ok(), "stop: {out:?}");
            ensure!(
                t.elapsed() < Duration::from_secs(20),
                "stop took {:?}",
                t.elapsed()
            );
            let out = cri(&["status", &id]);
            ensure!(out.stdout.contains("\"EXITED\""), "status: {out:?}");
            let out = cri(&["rm", &id]);
            ensure!(out.ok(), "rm: {out:?}");
            ensure!(
                !c.runc_root.join("k8s.io").join(&id).exists(),
                "state left in the runtime's --root"
            );
            Ok(())
        },
    );

    s.check("StopPodSandbox, RemovePodSandbox: nothing left", || {
        let p = pod.lock().unwrap().clone();
        let out = cri(&["stopp", &p]);
        ensure!(out.ok(), "stopp: {out:?}");
        let out = cri(&["rmp", &p]);
        ensure!(out.ok(), "rmp: {out:?}");
        let left = common::state_left(&c.runc_root.join("k8s.io"));
        ensure!(left.is_empty(), "runtime --root holds {left:?}");
        let left: Vec<_> = cgroups
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.exists())
            .cloned()
            .collect();
        ensure!(left.is_empty(), "cgroups left: {left:?}");
        Ok(())
    });

    drop(c);
    remove_cgroup_tree(&parent);
    s.check(
        "teardown: containerd stopped, no cgroup, mount or temp dir left",
        || nothing_left(&parent, &d),
    );
    s.finish();
}

#[test]
fn cri_with_mica() {
    cri_suite(Runtime::Mica);
}

#[test]
fn cri_with_runc() {
    cri_suite(Runtime::Runc);
}
