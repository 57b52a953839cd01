//! What a process sees inside a mica container: every test runs
//! `mica-probe` (see rootfs-fixtures/README.md) and asserts on its JSON.

mod common;

use common::*;
use serde_json::{json, Value};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
const PROBE: &str = "/usr/bin/mica-probe";

// ------------------------------------------------------------------ helpers

/// No mica command in these tests may take longer than this: a hang is a
/// failure with a message, not a stuck test run.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Run `cmd` (stdout/stderr to files in the env's temp dir) with a time
/// limit; returns (exit code or 128+signal, stdout, stderr).
fn exec_limited(env: &Env, mut cmd: Command) -> (i32, String, String) {
    use std::os::unix::process::ExitStatusExt;
    let base = env.tmp.path().join(unique("out"));
    let (po, pe) = (base.with_extension("stdout"), base.with_extension("stderr"));
    let mut child = cmd
        .stdout(std::fs::File::create(&po).unwrap())
        .stderr(std::fs::File::create(&pe).unwrap())
        .spawn()
        .expect("spawn mica");
    let end = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mica timed out after {TIMEOUT:?}: {cmd:?}\nstdout={}\nstderr={}",
                std::fs::read_to_string(&po).unwrap_or_default(),
                std::fs::read_to_string(&pe).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    (
        code,
        std::fs::read_to_string(&po).unwrap_or_default(),
        std::fs::read_to_string(&pe).unwrap_or_default(),
    )
}

/// `mica --root R ARGS` with a time limit.
fn mica_limited(env: &Env, args: &[&str]) -> (i32, String, String) {
    let mut c = env.cmd();
    c.args(args).stdin(Stdio::null());
    exec_limited(env, c)
}

/// `mica run [extra] --bundle B ID` with a time limit.
fn run_limited(env: &Env, bundle: &Path, extra: &[&str]) -> (i32, String, String) {
    let id = env.id("run");
    let mut c = env.cmd();
    c.arg("run")
        .args(extra)
        .arg("--bundle")
        .arg(bundle)
        .arg(&id)
        .stdin(Stdio::null());
    exec_limited(env, c)
}

/// The probe's argv: the probe itself, then `args`.
fn probe_argv<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![PROBE];
    v.extend_from_slice(args);
    v
}

fn read_config(bundle: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap()
}

/// Run the probe in the busybox fixture; returns (probe JSON, the config it ran with).
fn probe_cfg(env: &Env, args: &[&str], edit: impl FnOnce(&mut Value)) -> (Value, Value) {
    let b = env.bundle("busybox", &probe_argv(args), edit);
    let cfg = read_config(&b);
    let (code, out, err) = run_limited(env, &b, &[]);
    assert_eq!(code, 0, "probe failed: stdout={out} stderr={err}");
    let j = parse_probe(&out);
    assert_eq!(j["errors"], json!([]), "probe reported errors: {out}");
    (j, cfg)
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("not a string: {x}"))
                .to_string()
        })
        .collect()
}

fn fd_nums(j: &Value) -> Vec<i64> {
    j["fds"]
        .as_array()
        .unwrap_or_else(|| panic!("no fds: {j}"))
        .iter()
        .map(|f| f["fd"].as_i64().unwrap())
        .collect()
}

/// The topmost mount at `mount_point` in the probe's mountinfo.
fn mount_at<'a>(j: &'a Value, mount_point: &str) -> &'a Value {
    j["mounts"]
        .as_array()
        .unwrap_or_else(|| panic!("no mounts: {j}"))
        .iter()
        .rev()
        .find(|m| m["mount_point"] == mount_point)
        .unwrap_or_else(|| panic!("no mount at {mount_point}: {}", j["mounts"]))
}

fn has_mount_at(j: &Value, mount_point: &str) -> bool {
    j["mounts"]
        .as_array()
        .is_some_and(|ms| ms.iter().any(|m| m["mount_point"] == mount_point))
}

fn assert_options(m: &Value, wanted: &[&str]) {
    let opts = strs(&m["options"]);
    for w in wanted {
        assert!(
            opts.iter().any(|o| o == w),
            "mount {} lacks option {w}: {opts:?}",
            m["mount_point"]
        );
    }
}

/// The result of `--write`/`--read`/`--mkdir` (`kind` = writes/reads/mkdirs) for `path`.
fn action<'a>(j: &'a Value, kind: &str, path: &str) -> &'a Value {
    j[kind]
        .as_array()
        .unwrap_or_else(|| panic!("no {kind}: {j}"))
        .iter()
        .find(|w| w["path"] == path)
        .unwrap_or_else(|| panic!("no {kind} entry for {path}: {}", j[kind]))
}

fn syscall<'a>(j: &'a Value, name: &str) -> &'a Value {
    j["syscalls"]
        .as_array()
        .unwrap_or_else(|| panic!("no syscalls: {j}"))
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no syscall entry {name}: {}", j["syscalls"]))
}

fn mounts_mut(cfg: &mut Value) -> &mut Vec<Value> {
    cfg["mounts"].as_array_mut().expect("config mounts")
}

fn add_mount(cfg: &mut Value, m: Value) {
    mounts_mut(cfg).push(m);
}

fn remove_mount(cfg: &mut Value, destination: &str) {
    let ms = mounts_mut(cfg);
    let before = ms.len();
    ms.retain(|m| m["destination"] != destination);
    assert_eq!(ms.len() + 1, before, "config had no mount at {destination}");
}

fn host_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The probe must not have been able to leave anything in the fixture.
fn fixture_path(rel: &str) -> PathBuf {
    fixtures().join("busybox").join(rel.trim_start_matches('/'))
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

// ------------------------------------------------------------------ 1. default config

#[test]
fn default_config_is_locked_down() {
    let env = Env::new();
    let (j, cfg) = probe_cfg(&env, &["--remount-root-rw"], |_| {});

    // The root is read-only and cannot be made writable again.
    assert_eq!(j["root_writable"], json!({"ok": false, "errno": "EROFS"}));
    let rr = &j["remount_root"];
    assert_eq!(
        rr["bind_remount"],
        json!({"ok": false, "errno": "EPERM"}),
        "{rr}"
    );
    assert_eq!(
        rr["remount"],
        json!({"ok": false, "errno": "EPERM"}),
        "{rr}"
    );
    assert_eq!(
        rr["root_writable_after"],
        json!({"ok": false, "errno": "EROFS"}),
        "{rr}"
    );
    let root = mount_at(&j, "/");
    assert_options(root, &["ro", "nosuid", "nodev"]);

    // Identity.
    assert_eq!(j["pid"], 1);
    assert_eq!(
        (j["uid"].clone(), j["euid"].clone(), j["suid"].clone()),
        (json!(0), json!(0), json!(0))
    );
    assert_eq!(
        (j["gid"].clone(), j["egid"].clone(), j["sgid"].clone()),
        (json!(0), json!(0), json!(0))
    );
    assert_eq!(
        j["groups"],
        json!([]),
        "mica's own supplementary groups leaked"
    );

    // Capabilities: runc's default three, nothing inheritable or ambient.
    let caps = &j["caps"];
    assert_eq!(caps["effective"], json!(DEFAULT_CAPS), "{caps}");
    assert_eq!(caps["permitted"], json!(DEFAULT_CAPS), "{caps}");
    assert_eq!(caps["bounding"], json!(DEFAULT_CAPS), "{caps}");
    assert_eq!(caps["inheritable"], json!([]), "{caps}");
    assert_eq!(caps["ambient"], json!([]), "{caps}");
    assert_eq!(j["no_new_privs"], true);

    // Process environment.
    assert_eq!(fd_nums(&j), vec![0, 1, 2], "fds: {}", j["fds"]);
    assert_eq!(j["cwd"], "/");
    // The config's environment, and HOME from /etc/passwd as runc adds it.
    let mut want = cfg["process"]["env"].clone();
    want.as_array_mut().unwrap().push(json!("HOME=/root"));
    assert_eq!(j["env"], want);
    assert_eq!(j["hostname"], "mica");
    assert_eq!(j["exe"], PROBE);
}

// ------------------------------------------------------------------ 2. nothing leaks in

#[test]
fn host_fds_and_env_do_not_leak() {
    let env = Env::new();
    let leak = env.tmp.path().join("leaked-file");
    std::fs::write(&leak, b"secret").unwrap();
    let c = CString::new(leak.as_os_str().as_bytes()).unwrap();
    // Deliberately without O_CLOEXEC: mica itself inherits it.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    assert!(
        fd >= 0,
        "open {}: {}",
        leak.display(),
        std::io::Error::last_os_error()
    );
    let leaked = unsafe { OwnedFd::from_raw_fd(fd) };

    let b = env.bundle("busybox", &[PROBE], |_| {});
    let cfg = read_config(&b);
    let id = env.id("leak");
    let mut cmd = env.cmd();
    cmd.args(["run", "--bundle"])
        .arg(&b)
        .arg(&id)
        .env("MICA_INSIDE_LEAK", "from-the-host")
        .stdin(Stdio::null());
    let (code, stdout, stderr) = exec_limited(&env, cmd);
    drop(leaked);
    assert_eq!(code, 0, "run failed: {stdout} {stderr}");
    let j = parse_probe(&stdout);

    assert_eq!(fd_nums(&j), vec![0, 1, 2], "fds: {}", j["fds"]);
    assert!(
        !j["fds"].to_string().contains("leaked-file"),
        "{}",
        j["fds"]
    );
    let mut want = cfg["process"]["env"].clone();
    want.as_array_mut().unwrap().push(json!("HOME=/root"));
    assert_eq!(j["env"], want);
    assert!(
        !j["env"].to_string().contains("MICA_INSIDE_LEAK"),
        "{}",
        j["env"]
    );
}

/// `run --preserve-fds N` of the probe; in mica's process only, a file
/// `kept-file` sits at the fds `at` (inheritable) and the fds `closed` are
/// closed. Returns the probe's report.
fn run_preserving(env: &Env, n: &str, at: &'static [i32], closed: &'static [i32]) -> Value {
    let mut cmd = env.cmd();
    cmd.args(["run", "--preserve-fds", n]);
    run_with_fds(env, cmd, at, closed)
}

/// `cmd` (mica ... run, up to the bundle) of the probe, with `kept-file` at
/// the fds `at` and the fds `closed` closed, as `run_preserving`.
fn run_with_fds(env: &Env, mut cmd: Command, at: &'static [i32], closed: &'static [i32]) -> Value {
    let kept = env.tmp.path().join("kept-file");
    let f = std::fs::File::create(&kept).unwrap(); // O_CLOEXEC in this process
    let src = f.as_raw_fd();
    let b = env.bundle("busybox", &[PROBE], |_| {});
    let id = env.id("preserve");
    cmd.arg("--bundle").arg(&b).arg(&id).stdin(Stdio::null());
    unsafe {
        cmd.pre_exec(move || {
            for &target in at {
                if src == target {
                    let fl = libc::fcntl(src, libc::F_GETFD);
                    if fl < 0 || libc::fcntl(src, libc::F_SETFD, fl & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(src, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for &fd in closed {
                libc::close(fd);
            }
            Ok(())
        });
    }
    let (code, stdout, stderr) = exec_limited(env, cmd);
    drop(f);
    assert_eq!(code, 0, "run failed: {stdout} {stderr}");
    parse_probe(&stdout)
}

/// Ignored signals survive execve: whatever mica's caller ignored or blocked
/// (including the real-time signals libc keeps for itself, and SIGRTMAX)
/// must not reach the container.
#[test]
fn ignored_and_blocked_signals_do_not_leak() {
    let env = Env::new();
    let b = env.bundle("busybox", &[PROBE], |_| {});
    let id = env.id("signals");
    let mut cmd = env.cmd();
    cmd.args(["run", "--bundle"])
        .arg(&b)
        .arg(&id)
        .stdin(Stdio::null());
    unsafe {
        cmd.pre_exec(|| {
            // rt_sigaction(SIG_IGN) directly: libc refuses 32-34.
            let ign = [1u64, 0, 0, 0];
            for sig in [libc::SIGHUP, libc::SIGPIPE, 33, 34, 63, 64] {
                if libc::syscall(libc::SYS_rt_sigaction, sig, ign.as_ptr(), 0usize, 8usize) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            let block: u64 = 1 << (libc::SIGUSR1 - 1) | 1 << (64 - 1);
            if libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_BLOCK,
                &block,
                0usize,
                8usize,
            ) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (code, stdout, stderr) = exec_limited(&env, cmd);
    assert_eq!(code, 0, "run failed: {stdout} {stderr}");
    let j = parse_probe(&stdout);
    assert_eq!(j["signals"]["ignored"], json!([]), "{}", j["signals"]);
    assert_eq!(j["signals"]["blocked"], json!([]), "{}", j["signals"]);
}

#[test]
fn preserve_fds_passes_exactly_fd_3() {
    let env = Env::new();
    // The file at fd 3 (preserved) and at fd 4 (not).
    let j = run_preserving(&env, "1", &[3, 4], &[]);
    assert_eq!(fd_nums(&j), vec![0, 1, 2, 3], "fds: {}", j["fds"]);
    let target = j["fds"][3]["target"].as_str().unwrap_or_default();
    assert!(
        target.ends_with("/kept-file"),
        "fd 3 is {target:?}, not the preserved file"
    );
}

/// `--preserve-fds 3` with only fd 3 open: fds 4 and 5 are a gap mica's own
/// fds (state dir, sync socket, ...) land in; none of them may reach the
/// container.
#[test]
fn preserve_fds_hole_leaks_no_fd_of_mica() {
    let env = Env::new();
    let j = run_preserving(&env, "3", &[3], &[4, 5]);
    assert_eq!(fd_nums(&j), vec![0, 1, 2, 3], "fds: {}", j["fds"]);
}

/// A `--preserve-fds` far beyond what is open (and beyond the open-files
/// limit) passes what the caller had open (the kept file, and whatever the
/// test harness leaves inheritable) and none of mica's own fds, which land
/// in the gaps.
#[test]
fn preserve_fds_far_beyond_the_open_fds() {
    let env = Env::new();
    let j = run_preserving(&env, "2000000", &[3], &[]);
    let fds = j["fds"].to_string();
    assert_eq!(&fd_nums(&j)[..4], &[0, 1, 2, 3], "fds: {fds}");
    assert!(
        !fds.contains("/state/") && !fds.contains("socket:") && !fds.contains("cgroup"),
        "an fd of mica reached the container: {fds}"
    );
}

/// systemd socket activation, as runc passes it on: with LISTEN_PID = mica's
/// pid, LISTEN_FDS fds from 3 reach the process ahead of the
/// `--preserve-fds` ones, with LISTEN_FDS=N, LISTEN_PID=1 and LISTEN_FDNAMES
/// in its environment; meant for another pid, none.
#[test]
fn socket_activation_fds_are_passed_on() {
    let env = Env::new();
    for (listen_pid, passed) in [("", true), ("1", false)] {
        let mica = env.cmd();
        let mut cmd = Command::new("sh");
        // $$ is mica's pid once sh execs it.
        cmd.args(["-c", "export LISTEN_PID=${WANT_PID:-$$}; exec \"$@\"", "sh"])
            .arg(mica.get_program())
            .args(mica.get_args())
            .args(["run", "--preserve-fds", "1"])
            .env("LISTEN_FDS", "2")
            .env("LISTEN_FDNAMES", "web:admin")
            .env("WANT_PID", listen_pid);
        let j = run_with_fds(&env, cmd, &[3, 4, 5, 6], &[]);
        let envs = j["env"].to_string();
        if passed {
            assert_eq!(fd_nums(&j), vec![0, 1, 2, 3, 4, 5], "fds: {}", j["fds"]);
            for e in ["LISTEN_FDS=2", "LISTEN_PID=1", "LISTEN_FDNAMES=web:admin"] {
                assert!(envs.contains(e), "{e} missing: {envs}");
            }
        } else {
            assert_eq!(fd_nums(&j), vec![0, 1, 2, 3], "fds: {}", j["fds"]);
            assert!(!envs.contains("LISTEN_"), "{envs}");
        }
    }
}

#[test]
fn preserve_fds_below_zero_is_refused() {
    let env = Env::new();
    let b = env.bundle("busybox", &[PROBE], |_| {});
    let id = env.id("preserveneg");
    let out = env.mica(&[
        "run",
        "--preserve-fds=-1",
        "--bundle",
        b.to_str().unwrap(),
        &id,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--preserve-fds"), "{err}");
    env.assert_state_empty();
}

// ------------------------------------------------------------------ 3. user, umask, cwd, env, caps

#[test]
fn user_groups_umask_cwd_env() {
    let env = Env::new();
    let custom_env = json!([
        "PATH=/bin:/usr/bin",
        "MICA_A=1",
        "MICA_B=two words",
        "HOME=/home/user"
    ]);
    let e2 = custom_env.clone();
    let (j, _) = probe_cfg(&env, &["--write", "/tmp/umask-file"], move |c| {
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [29, 44], "umask": 0o027});
        c["process"]["cwd"] = json!("/tmp");
        c["process"]["env"] = e2;
        add_mount(
            c,
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "mode=1777", "size=1m"]}),
        );
    });
    for k in ["uid", "euid", "suid", "gid", "egid", "sgid"] {
        assert_eq!(j[k], 1000, "{k}");
    }
    assert_eq!(j["groups"], json!([29, 44]));
    assert_eq!(j["umask"], 0o027);
    assert_eq!(j["umask_octal"], "0027");
    assert_eq!(j["cwd"], "/tmp");
    assert_eq!(j["env"], custom_env);
    // The umask applies to files the process creates.
    let w = action(&j, "writes", "/tmp/umask-file");
    assert_eq!(w["ok"], true, "{w}");
    assert_eq!(w["mode"], 0o640, "{w}");
}

/// A process without HOME gets its user's home from the container's
/// /etc/passwd ("/" for a uid it does not list), as runc sets it; a HOME
/// the config gives is kept (above).
#[test]
fn home_comes_from_the_containers_passwd() {
    let env = Env::new();
    let home = |edit: &dyn Fn(&mut Value)| {
        let (j, _) = probe_cfg(&env, &[], |c| edit(c));
        let homes: Vec<String> = strs(&j["env"])
            .into_iter()
            .filter(|e| e.starts_with("HOME="))
            .collect();
        homes
    };
    let user =
        |uid: u32| move |c: &mut Value| c["process"]["user"] = json!({"uid": uid, "gid": uid});
    assert_eq!(home(&user(0)), ["HOME=/root"]);
    assert_eq!(home(&user(1000)), ["HOME=/home/user"]);
    assert_eq!(home(&user(4242)), ["HOME=/"]);
    // A passwd bind-mounted over the image's is the one read.
    let passwd = env.tmp.path().join("passwd");
    std::fs::write(&passwd, "root:x:0:0:root:/srv/root-home:/bin/sh\n").unwrap();
    let bound = home(&|c: &mut Value| {
        add_mount(
            c,
            json!({"destination": "/etc/passwd", "type": "bind",
                   "source": passwd.to_str().unwrap(), "options": ["rbind", "ro"]}),
        )
    });
    assert_eq!(bound, ["HOME=/srv/root-home"]);
    // A FIFO there is not read (the start would block on it): "/".
    let fifo = env.tmp.path().join("passwd-fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let fifo_home = home(&|c: &mut Value| {
        add_mount(
            c,
            json!({"destination": "/etc/passwd", "type": "bind",
                   "source": fifo.to_str().unwrap(), "options": ["rbind", "ro"]}),
        )
    });
    assert_eq!(fifo_home, ["HOME=/"]);
}

/// Each container has a session keyring of its own, `_ses.ID` as runc
/// names it, so the caller's keys do not reach it; `--no-new-keyring`
/// keeps the caller's.
#[test]
fn session_keyring_is_the_containers_own() {
    let env = Env::new();
    let b = env.bundle("busybox", &probe_argv(&["--read", "/proc/keys"]), |c| {
        // /proc/keys is masked by default.
        c["linux"]["maskedPaths"] = json!([]);
    });
    let keys = |extra: &[&str]| {
        let id = env.id("keys");
        let mut c = env.cmd();
        c.arg("run")
            .args(extra)
            .arg("--bundle")
            .arg(&b)
            .arg(&id)
            .stdin(Stdio::null());
        let (code, out, err) = exec_limited(&env, c);
        assert_eq!(code, 0, "run {extra:?}: {out} {err}");
        let j = parse_probe(&out);
        let text = action(&j, "reads", "/proc/keys")["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (id, text)
    };
    let (id, text) = keys(&[]);
    assert!(
        text.contains(&format!(" _ses.{id}: ")),
        "no keyring _ses.{id} in:\n{text}"
    );
    let (id, text) = keys(&["--no-new-keyring"]);
    assert!(
        !text.contains(&format!("_ses.{id}")),
        "--no-new-keyring made one:\n{text}"
    );
}

/// A keyring named `_ses.ID` made (and left open) by another user before
/// the container starts is not joined: the container fails instead of
/// sharing keys with that user.
#[test]
fn squatted_session_keyring_is_refused() {
    let env = Env::new();
    let b = env.bundle("busybox", &probe_argv(&[]), |_| {});
    let id = env.id("squat");
    let name = std::ffi::CString::new(format!("_ses.{id}")).unwrap();
    // As nobody: make the keyring, open it to all, keep it in nobody's user
    // keyring. Only syscalls after fork (the test process has threads).
    let (key_r, key_w) = nix::unistd::pipe().unwrap();
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            let ok = libc::setresgid(65534, 65534, 65534) == 0
                && libc::setresuid(65534, 65534, 65534) == 0;
            let key = if ok {
                libc::syscall(libc::SYS_keyctl, 1, name.as_ptr())
            } else {
                -1
            };
            if key > 0 {
                libc::syscall(libc::SYS_keyctl, 5, key, 0x3f3f_3f3f);
                libc::syscall(libc::SYS_keyctl, 8, key, -4); // link into the user keyring
            }
            let k = key as i32;
            libc::write(
                std::os::fd::AsRawFd::as_raw_fd(&key_w),
                &k as *const i32 as *const _,
                4,
            );
            libc::_exit(0);
        }
    }
    drop(key_w);
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    let mut k = [0u8; 4];
    nix::unistd::read(&key_r, &mut k).unwrap();
    let key = i32::from_ne_bytes(k);
    assert!(key > 0, "could not make the squatting keyring");
    let mut c = env.cmd();
    c.arg("run")
        .arg("--bundle")
        .arg(&b)
        .arg(&id)
        .stdin(Stdio::null());
    let (code, out, err) = exec_limited(&env, c);
    // Gone for good (root may: the squatter opened it to all).
    unsafe { libc::syscall(libc::SYS_keyctl, 21, key) };
    assert_ne!(code, 0, "ran in another user's keyring: {out}");
    assert!(err.contains("another user"), "{err}");
}

#[test]
fn non_root_user_gets_no_effective_caps_without_ambient() {
    let env = Env::new();
    let (j, _) = probe_cfg(&env, &[], |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    assert_eq!(j["uid"], 1000);
    let caps = &j["caps"];
    // A non-root exec of a file without file caps keeps only ambient caps.
    assert_eq!(caps["effective"], json!([]), "{caps}");
    assert_eq!(caps["permitted"], json!([]), "{caps}");
    assert_eq!(caps["inheritable"], json!([]), "{caps}");
    assert_eq!(caps["ambient"], json!([]), "{caps}");
    assert_eq!(caps["bounding"], json!(DEFAULT_CAPS), "{caps}");
}

#[test]
fn capability_sets_follow_the_config() {
    let env = Env::new();
    let set = json!(["CAP_CHOWN", "CAP_KILL", "CAP_SETUID"]);
    let s2 = set.clone();
    let (j, _) = probe_cfg(&env, &[], move |c| {
        c["process"]["capabilities"] = json!({"bounding": s2, "effective": s2, "permitted": s2, "inheritable": [], "ambient": []});
    });
    let caps = &j["caps"];
    assert_eq!(caps["effective"], set, "{caps}");
    assert_eq!(caps["permitted"], set, "{caps}");
    assert_eq!(caps["bounding"], set, "{caps}");
    assert_eq!(caps["inheritable"], json!([]), "{caps}");
    assert_eq!(caps["ambient"], json!([]), "{caps}");
}

/// A capability name that maps to nothing in the kernel is an error, as
/// the runtime spec requires (runc only warns), with nothing left behind.
#[test]
fn unknown_capability_is_refused() {
    let env = Env::new();
    let b = env.bundle("busybox", &probe_argv(&[]), |c| {
        c["process"]["capabilities"]["bounding"] = json!(["CAP_CHOWN", "CAP_FROM_THE_FUTURE"]);
    });
    let (code, out, err) = run_limited(&env, &b, &[]);
    assert_ne!(code, 0, "ran with an unknown capability: {out}");
    assert!(
        err.contains("CAP_FROM_THE_FUTURE") && err.lines().count() == 1,
        "{err:?}"
    );
    env.assert_state_empty();
}

#[test]
fn ambient_caps_reach_a_non_root_user() {
    let env = Env::new();
    let one = json!(["CAP_NET_BIND_SERVICE"]);
    let o2 = one.clone();
    let (j, _) = probe_cfg(&env, &[], move |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["capabilities"] = json!({"bounding": o2, "effective": o2, "permitted": o2, "inheritable": o2, "ambient": o2});
    });
    assert_eq!(j["uid"], 1000);
    let caps = &j["caps"];
    for set in [
        "effective",
        "permitted",
        "inheritable",
        "bounding",
        "ambient",
    ] {
        assert_eq!(caps[set], one, "{set}: {caps}");
    }
}

// ------------------------------------------------------------------ 4. rlimits

#[test]
fn rlimits_are_applied() {
    let env = Env::new();
    let (j, _) = probe_cfg(&env, &[], |c| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
            {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192}
        ]);
    });
    assert_eq!(j["rlimits"]["RLIMIT_NOFILE"], json!([512, 1024]));
    assert_eq!(j["rlimits"]["RLIMIT_MSGQUEUE"], json!([4096, 8192]));
}

/// runtime-spec 1.2's process.scheduler and process.ioPriority reach the
/// process (busybox reads them back: /proc/self/stat's nice, rt_priority
/// and policy fields; `ionice`).
#[test]
fn scheduler_and_io_priority_are_applied() {
    let env = Env::new();
    let script = "cut -d' ' -f19,40,41 /proc/self/stat; ionice";
    let b = env.bundle("busybox", &["/bin/sh", "-c", script], |c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 5});
    });
    let (code, out, err) = run_limited(&env, &b, &[]);
    assert_eq!(code, 0, "{out} {err}");
    // nice 7, no real-time priority, policy 3 (SCHED_BATCH)
    assert_eq!(out, "7 0 3\nbest-effort: prio 5\n", "{err}");
    let b = env.bundle("busybox", &["/bin/sh", "-c", script], |c| {
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    });
    let (code, out, err) = run_limited(&env, &b, &[]);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(out, "0 0 0\nidle\n", "{err}");
    // What the kernel refuses (a priority with SCHED_OTHER) or the config
    // cannot mean fails create with one line, leaving nothing.
    for (edit, needle) in [
        (
            json!({"scheduler": {"policy": "SCHED_OTHER", "priority": 5}}),
            "sched_setattr",
        ),
        (
            json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}}),
            "out of range",
        ),
        (
            json!({"scheduler": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_UTIL_CLAMP_MIN"]}}),
            "flags \"SCHED_FLAG_UTIL_CLAMP_MIN\" is not supported",
        ),
    ] {
        let b = env.bundle("busybox", &["/bin/true"], |c| {
            for (k, v) in edit.as_object().unwrap() {
                c["process"][k] = v.clone();
            }
        });
        let (code, out, err) = run_limited(&env, &b, &[]);
        assert_ne!(code, 0, "{edit}: {out}");
        assert_eq!(err.lines().count(), 1, "{edit}: {err:?}");
        assert!(err.contains(needle), "{edit}: {err:?}");
    }
    env.assert_state_empty();
}

// ------------------------------------------------------------------ 5. mounts

#[test]
fn tmpfs_is_writable_while_the_root_is_not() {
    let env = Env::new();
    let (j, _) = probe_cfg(&env, &["--write", "/tmp/x", "--write", "/etc/x"], |c| {
        add_mount(
            c,
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
        );
    });
    let tmp = action(&j, "writes", "/tmp/x");
    assert_eq!(tmp["ok"], true, "{tmp}");
    let etc = action(&j, "writes", "/etc/x");
    assert_eq!(etc["ok"], false, "{etc}");
    assert_eq!(etc["errno"], "EROFS", "{etc}");
    let m = mount_at(&j, "/tmp");
    assert_eq!(m["fstype"], "tmpfs");
    assert!(
        strs(&m["super_options"]).contains(&"size=1024k".to_string()),
        "{m}"
    );
    assert!(
        !fixture_path("/etc/x").exists(),
        "the probe wrote into the fixture"
    );
}

#[test]
fn rw_bind_mount_reaches_the_host_with_its_flags() {
    let env = Env::new();
    let host = TempDir::new("bind-rw");
    let src = host.path().to_path_buf();
    let (j, _) = probe_cfg(&env, &["--write", "/mnt/x"], |c| {
        add_mount(
            c,
            json!({"destination": "/mnt", "type": "bind", "source": src,
                   "options": ["rbind", "rw", "nosuid", "nodev", "noexec"]}),
        );
    });
    let w = action(&j, "writes", "/mnt/x");
    assert_eq!(w["ok"], true, "{w}");
    assert_eq!(
        std::fs::read_to_string(host.path().join("x")).unwrap(),
        "mica-probe\n"
    );
    let m = mount_at(&j, "/mnt");
    assert_options(m, &["rw", "nosuid", "nodev", "noexec"]);
}

#[test]
fn ro_bind_mount_is_read_only() {
    let env = Env::new();
    let host = TempDir::new("bind-ro");
    std::fs::write(host.path().join("present"), b"hello").unwrap();
    let src = host.path().to_path_buf();
    let (j, _) = probe_cfg(
        &env,
        &["--write", "/mnt/x", "--read", "/mnt/present"],
        |c| {
            add_mount(
                c,
                json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
            );
        },
    );
    let w = action(&j, "writes", "/mnt/x");
    assert_eq!(w["ok"], false, "{w}");
    assert_eq!(w["errno"], "EROFS", "{w}");
    assert!(!host.path().join("x").exists());
    let r = action(&j, "reads", "/mnt/present");
    assert_eq!(r["content"], "hello", "{r}");
    assert_options(mount_at(&j, "/mnt"), &["ro"]);
}

/// `rro` (mount_setattr with AT_RECURSIVE) makes the bind mount and every
/// mount below it read-only; plain `ro` leaves a submount writable. The
/// submount is a tmpfs made in a private mount namespace that mica is
/// started in (the host's mounts are untouched).
#[test]
fn rro_makes_submounts_read_only() {
    let env = Env::new();
    let host = TempDir::new("bind-rro");
    std::fs::create_dir(host.path().join("sub")).unwrap();
    let src = host.path().to_path_buf();
    for (opt, sub_writable) in [("ro", true), ("rro", false)] {
        let b = env.bundle(
            "busybox",
            &probe_argv(&["--write", "/mnt/x", "--write", "/mnt/sub/x"]),
            |c| {
                add_mount(
                    c,
                    json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", opt]}),
                );
            },
        );
        let mica = env.cmd();
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs -o size=1m mica-rro-test \"$1\" && shift && exec \"$@\"")
            .arg("sh")
            .arg(src.join("sub"))
            .arg(mica.get_program())
            .args(mica.get_args())
            .args(["run", "--bundle"])
            .arg(&b)
            .arg(env.id("rro"))
            .stdin(Stdio::null());
        let (code, out, err) = exec_limited(&env, c);
        assert_eq!(code, 0, "{opt}: stdout={out} stderr={err}");
        let j = parse_probe(&out);
        let top = action(&j, "writes", "/mnt/x");
        assert_eq!(top["errno"], "EROFS", "{opt}: {top}");
        let sub = action(&j, "writes", "/mnt/sub/x");
        assert_eq!(sub["ok"], sub_writable, "{opt}: {sub}");
        if !sub_writable {
            assert_eq!(sub["errno"], "EROFS", "{opt}: {sub}");
        }
    }
    // Nothing reached the host: the tmpfs lived in the private namespace.
    assert!(!host.path().join("x").exists());
    assert!(!host.path().join("sub/x").exists());
    assert!(host_mounts_containing("mica-rro-test").is_empty());
}

/// runtime-spec 1.1: a relative mount destination (older configs) is read
/// as relative to "/", as runc reads it.
#[test]
fn relative_mount_destination_is_below_the_root() {
    let env = Env::new();
    let (j, _) = probe_cfg(&env, &["--write", "/tmp/x"], |c| {
        add_mount(
            c,
            json!({"destination": "tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
        );
    });
    assert_eq!(mount_at(&j, "/tmp")["fstype"], "tmpfs");
    let w = action(&j, "writes", "/tmp/x");
    assert_eq!(w["ok"], true, "{w}");
}

/// An idmapped bind mount (mounts[].uidMappings/gidMappings, read as the
/// kernel and runc read them: an id on disk, `containerID`, shows as
/// `hostID`): with 1000 -> 0, files of uid 1000 show as root's, unmapped
/// ones as the overflow id, and what root creates lands on disk as 1000.
#[test]
fn idmapped_bind_mount_maps_ownership() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let host = TempDir::new("bind-idmap");
    let mine = host.path().join("mine");
    std::fs::write(&mine, b"x").unwrap();
    std::os::unix::fs::chown(&mine, Some(1000), Some(1000)).unwrap();
    std::fs::write(host.path().join("roots"), b"x").unwrap();
    std::os::unix::fs::chown(host.path(), Some(1000), Some(1000)).unwrap();
    // Writable for the container's root, who has no CAP_DAC_OVERRIDE.
    std::fs::set_permissions(
        host.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let src = host.path().to_path_buf();
    let script = "stat -c '%u %g' /mnt/mine /mnt/roots && touch /mnt/new";
    let map = json!([{"containerID": 1000, "hostID": 0, "size": 1}]);
    for idmapped in [false, true] {
        let _ = std::fs::remove_file(host.path().join("new"));
        let b = env.bundle("busybox", &["/bin/sh", "-c", script], |c| {
            let mut m =
                json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind"]});
            if idmapped {
                m["uidMappings"] = map.clone();
                m["gidMappings"] = map.clone();
            }
            add_mount(c, m);
        });
        let (code, out, err) = run_limited(&env, &b, &[]);
        assert_eq!(code, 0, "idmapped {idmapped}: {out} {err}");
        let new = std::fs::metadata(host.path().join("new")).unwrap();
        if idmapped {
            assert_eq!(out, "0 0\n65534 65534\n");
            assert_eq!((new.uid(), new.gid()), (1000, 1000));
        } else {
            assert_eq!(out, "1000 1000\n0 0\n");
            assert_eq!((new.uid(), new.gid()), (0, 0));
        }
    }
    // What cannot be an idmapped mount is refused before anything exists.
    for (m, needle) in [
        (
            json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind"], "uidMappings": map}),
            "go together",
        ),
        (
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "uidMappings": map, "gidMappings": map}),
            "must be a bind mount",
        ),
        (
            json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", "idmap"]}),
            "user namespace mappings",
        ),
    ] {
        let b = env.bundle("busybox", &["/bin/true"], |c| add_mount(c, m.clone()));
        let (code, _, err) = run_limited(&env, &b, &[]);
        assert_ne!(code, 0, "{m}");
        assert!(
            err.contains(needle) && err.lines().count() == 1,
            "{m}: {err:?}"
        );
    }
    env.assert_state_empty();
}

#[test]
fn mountpoint_is_created_inside_a_tmpfs() {
    let env = Env::new();
    let host = TempDir::new("bind-nested");
    let src = host.path().to_path_buf();
    let (j, _) = probe_cfg(&env, &["--write", "/run/deep/data/x"], |c| {
        add_mount(
            c,
            json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
        );
        add_mount(
            c,
            json!({"destination": "/run/deep/data", "type": "bind", "source": src, "options": ["rbind", "rw"]}),
        );
    });
    let w = action(&j, "writes", "/run/deep/data/x");
    assert_eq!(w["ok"], true, "{w}");
    assert_eq!(
        std::fs::read_to_string(host.path().join("x")).unwrap(),
        "mica-probe\n"
    );
    assert!(
        !fixture_path("/run/deep").exists(),
        "mountpoint created in the fixture"
    );
}

#[test]
fn missing_mountpoint_in_readonly_root_fails_cleanly() {
    let env = Env::new();
    let dest = format!("/{}", unique("mica-inside-missing"));
    let d2 = dest.clone();
    let b = env.bundle("busybox", &[PROBE], move |c| {
        add_mount(
            c,
            json!({"destination": d2, "type": "tmpfs", "source": "tmpfs"}),
        );
    });
    let (code, out, err) = run_limited(&env, &b, &[]);
    assert_ne!(code, 0, "run succeeded: {out}");
    assert!(err.contains(&dest), "error does not name {dest}: {err:?}");
    assert!(
        lower(&err).contains("read-only file system"),
        "error does not say why (EROFS): {err:?}"
    );
    assert!(
        !fixture_path(&dest).exists(),
        "{dest} was created in the fixture"
    );
    env.assert_state_empty();
}

// ------------------------------------------------------------------ 6. masked and read-only paths

#[test]
fn masked_and_readonly_paths() {
    let env = Env::new();
    let (j, _) = probe_cfg(
        &env,
        &[
            "--read",
            "/proc/kcore",
            "--read",
            "/proc/keys",
            "--read",
            "/proc/timer_list",
            "--read",
            "/sys/firmware",
            "--read",
            "/proc/acpi",
            "--write",
            "/proc/sys/kernel/hostname",
            "--write",
            "/sys/firmware/x",
            "--write",
            "/proc/acpi/x",
        ],
        |c| {
            // Two masked directories: the first gets a tmpfs, the second a
            // bind mount of it.
            c["linux"]["maskedPaths"] = json!([
                "/proc/kcore",
                "/proc/keys",
                "/proc/timer_list",
                "/proc/acpi",
                "/sys/firmware"
            ]);
        },
    );
    // Masked files read empty: /dev/null is bound over them. (/proc/kcore only
    // exists with CONFIG_PROC_KCORE; when the host has none, masking skips it.)
    let mut masked = vec!["/proc/keys", "/proc/timer_list"];
    if Path::new("/proc/kcore").exists() {
        masked.push("/proc/kcore");
    } else {
        let r = action(&j, "reads", "/proc/kcore");
        assert_eq!(r["errno"], "ENOENT", "{r}");
        assert!(!has_mount_at(&j, "/proc/kcore"));
    }
    for f in masked {
        let r = action(&j, "reads", f);
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["content"], "", "{f} is not masked: {r}");
        assert!(has_mount_at(&j, f), "nothing mounted over {f}");
    }
    for d in ["/proc/acpi", "/sys/firmware"] {
        if !Path::new(d).exists() {
            continue;
        }
        let r = action(&j, "reads", d);
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["entries"], json!([]), "{d} is not masked: {r}");
        let m = mount_at(&j, d);
        assert_eq!(m["fstype"], "tmpfs", "{m}");
        assert_options(m, &["ro"]);
        let w = action(&j, "writes", &format!("{d}/x"));
        assert_eq!(w["ok"], false, "{w}");
        assert_eq!(w["errno"], "EROFS", "{w}");
    }

    let w = action(&j, "writes", "/proc/sys/kernel/hostname");
    assert_eq!(w["ok"], false, "{w}");
    assert_eq!(w["errno"], "EROFS", "{w}");
    assert_options(mount_at(&j, "/proc/sys"), &["ro"]);
}

// ------------------------------------------------------------------ 7. uts and sysctl

#[test]
fn hostname_domainname_and_sysctls() {
    let env = Env::new();
    let (j, _) = probe_cfg(
        &env,
        &[
            "--read",
            "/proc/sys/net/ipv4/ip_forward",
            "--read",
            "/proc/sys/net/ipv4/ip_default_ttl",
            "--read",
            "/proc/sys/kernel/hostname",
        ],
        |c| {
            c["hostname"] = json!("inside-host");
            c["domainname"] = json!("inside.example");
            c["linux"]["sysctl"] =
                json!({"net.ipv4.ip_forward": "1", "net.ipv4.ip_default_ttl": "42"});
        },
    );
    assert_eq!(j["hostname"], "inside-host");
    assert_eq!(j["domainname"], "inside.example");
    assert_eq!(
        action(&j, "reads", "/proc/sys/kernel/hostname")["content"],
        "inside-host\n"
    );
    assert_eq!(
        action(&j, "reads", "/proc/sys/net/ipv4/ip_forward")["content"],
        "1\n"
    );
    assert_eq!(
        action(&j, "reads", "/proc/sys/net/ipv4/ip_default_ttl")["content"],
        "42\n"
    );
}

// ------------------------------------------------------------------ 8. namespaces

#[test]
fn pid_namespace_makes_the_probe_pid_1() {
    let env = Env::new();
    let (j, _) = probe_cfg(&env, &[], |_| {});
    assert_eq!(j["pid"], 1);
    assert_ne!(j["namespaces"]["pid"], host_ns("pid"));
}

#[test]
fn without_pid_namespace_the_probe_is_not_pid_1() {
    let env = Env::new();
    let (j, _) = probe_cfg(&env, &[], |c| remove_ns(c, "pid"));
    let pid = j["pid"].as_i64().unwrap();
    assert_ne!(pid, 1);
    assert!(pid > 1, "pid {pid}");
    assert_eq!(j["namespaces"]["pid"], host_ns("pid"));
}

/// Whether the probe's reads show `lo` up in its network namespace: the
/// kernel gives 127.0.0.1 its local route only once lo is up.
fn loopback_is_up(j: &Value) -> bool {
    action(j, "reads", "/proc/net/fib_trie")["content"]
        .as_str()
        .is_some_and(|t| t.contains("127.0.0.1"))
}

#[test]
fn network_namespace_is_new_and_only_when_asked() {
    let env = Env::new();
    let (j, _) = probe_cfg(
        &env,
        &[
            "--read",
            "/sys/class/net/lo/flags",
            "--read",
            "/proc/net/fib_trie",
        ],
        |_| {},
    );
    assert_ne!(j["namespaces"]["net"], host_ns("net"));
    // As runc and crun do: a new network namespace's loopback is up.
    assert_eq!(
        action(&j, "reads", "/sys/class/net/lo/flags")["content"],
        "0x9\n",
        "IFF_UP|IFF_LOOPBACK"
    );
    assert!(loopback_is_up(&j), "{j}");
    assert!(
        j["namespaces"]["net"]
            .as_str()
            .unwrap()
            .starts_with("net:["),
        "{}",
        j["namespaces"]
    );
    let (j, _) = probe_cfg(&env, &[], |c| remove_ns(c, "network"));
    assert_eq!(j["namespaces"]["net"], host_ns("net"));
}

/// A user namespace mapping root to host 100000 (65536 ids), with what
/// such a namespace's root cannot mount made a bind instead.
fn with_user_ns(c: &mut Value) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    remove_mount(c, "/sys/fs/cgroup");
    for m in mounts_mut(c).iter_mut() {
        if m["type"] == "sysfs" {
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
    }
}

/// An idmapped bind of a shared mount is private in the container: a tmpfs
/// the container mounts under it does not propagate back to the source's
/// peers. (Run in a private mount namespace of the test's own, where the
/// source is made a shared mount, so the host is never touched.)
#[test]
fn idmapped_bind_of_a_shared_mount_propagates_nothing_back() {
    let env = Env::new();
    let host = TempDir::new("idmap-shared");
    let src = host.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let map = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    let b = env.bundle("busybox", &["/bin/true"], |c| {
        add_mount(
            c,
            json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind"],
                   "uidMappings": map, "gidMappings": map}),
        );
        add_mount(
            c,
            json!({"destination": "/mnt/sub", "type": "tmpfs", "source": "tmpfs"}),
        );
    });
    let id = env.id("shared");
    let script = r#"mount --bind "$1" "$1" && mount --make-shared "$1" &&
        grep -c " $1 .*shared:" /proc/self/mountinfo >&2 &&
        "$2" --root "$3" run --bundle "$4" "$5" && cat /proc/self/mountinfo"#;
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&src)
        .arg(mica_bin())
        .arg(&env.root)
        .arg(&b)
        .arg(&id)
        .stdin(Stdio::null());
    let (code, out, err) = exec_limited(&env, c);
    // The source was shared (else this test could not fail), the run worked.
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(err.trim(), "1", "{err}");
    let sub = format!(" {}/sub ", src.display());
    let leaked: Vec<&str> = out.lines().filter(|l| l.contains(&sub)).collect();
    assert!(leaked.is_empty(), "propagated back: {leaked:?}");
    env.assert_state_empty();
}

/// runc's `idmap` option alone: the bind takes the container's own user
/// namespace mappings, so the host's root-owned files are root's inside
/// (without it, the overflow id's).
#[test]
fn idmap_option_takes_the_containers_mappings() {
    let env = Env::new();
    idmap_option_maps_host_root(&env, with_user_ns);
}

/// In a container whose user namespace maps host ids 100000.. (`userns`
/// sets it up), a host root-owned file is the overflow id's through a plain
/// bind and root's through one with runc's `idmap` option alone.
fn idmap_option_maps_host_root(env: &Env, userns: impl Fn(&mut Value)) {
    let host = TempDir::new("bind-idmap-ns");
    std::fs::write(host.path().join("f"), b"x").unwrap();
    let src = host.path().to_path_buf();
    for (opts, want) in [
        (json!(["rbind"]), "65534\n"),
        (json!(["rbind", "idmap"]), "0\n"),
    ] {
        let b = env.bundle("busybox", &["/bin/stat", "-c", "%u", "/mnt/f"], |c| {
            userns(c);
            add_mount(
                c,
                json!({"destination": "/mnt", "type": "bind", "source": src, "options": opts}),
            );
        });
        let (code, out, err) = run_limited(env, &b, &[]);
        assert_eq!(code, 0, "{opts}: {out} {err}");
        assert_eq!(out, want, "{opts}");
    }
}

/// A process of the test's own holding a user namespace with these maps
/// (killed and reaped on drop).
struct UsernsHolder(std::process::Child);

impl UsernsHolder {
    fn new(map: &str) -> UsernsHolder {
        let child = Command::new("unshare")
            .args(["-U", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare -U");
        let pid = child.id();
        let holder = UsernsHolder(child);
        // unshare has made the namespace once its ns link differs from ours.
        let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
        let end = Instant::now() + TIMEOUT;
        while std::fs::read_link(format!("/proc/{pid}/ns/user"))
            .ok()
            .as_ref()
            == Some(&ours)
        {
            assert!(Instant::now() < end, "unshare -U made no user namespace");
            std::thread::sleep(Duration::from_millis(5));
        }
        for f in ["uid_map", "gid_map"] {
            std::fs::write(format!("/proc/{pid}/{f}"), map).unwrap();
        }
        holder
    }

    fn ns_path(&self) -> String {
        format!("/proc/{}/ns/user", self.0.id())
    }
}

impl Drop for UsernsHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A user namespace joined by path (as a Kubernetes pod's is by its
/// containers): it owns the namespaces the container makes, so its root
/// brings up lo in the new network namespace and mounts proc in the new pid
/// namespace; the process is that namespace's root; and runc's `idmap`
/// option alone maps a bind mount with the joined namespace's maps.
#[test]
fn joined_user_namespace_owns_the_new_namespaces() {
    let env = Env::new();
    let holder = UsernsHolder::new("0 100000 65536\n");
    let join = |c: &mut Value| {
        with_user_ns(c);
        for k in ["uidMappings", "gidMappings"] {
            c["linux"].as_object_mut().unwrap().remove(k);
        }
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "user" {
                n["path"] = json!(holder.ns_path());
            }
        }
    };
    let (j, _) = probe_cfg(&env, &USERNS_READS, join);
    assert_eq!(j["uid"], 0);
    assert_eq!(j["pid"], 1);
    for f in ["/proc/self/uid_map", "/proc/self/gid_map"] {
        assert_id_map(&j, f, ["0", "100000", "65536"]);
    }
    assert!(loopback_is_up(&j), "{j}");
    idmap_option_maps_host_root(&env, join);
    env.assert_state_empty();
}

#[test]
fn user_namespace_maps_root() {
    let env = Env::new();
    let (j, _) = probe_cfg(&env, &USERNS_READS, with_user_ns);
    assert_eq!(j["uid"], 0);
    assert_eq!(j["gid"], 0);
    assert_ne!(j["namespaces"]["user"], host_ns("user"));
    // The namespace's root brings up lo in the network namespace it owns.
    assert!(loopback_is_up(&j), "{j}");
    for f in ["/proc/self/uid_map", "/proc/self/gid_map"] {
        assert_id_map(&j, f, ["0", "100000", "65536"]);
    }
}

/// What the user namespace tests read: the id maps, and the routes that
/// show whether lo is up.
const USERNS_READS: [&str; 6] = [
    "--read",
    "/proc/self/uid_map",
    "--read",
    "/proc/self/gid_map",
    "--read",
    "/proc/net/fib_trie",
];

/// The probe read the id map `file` as one line of exactly these fields.
fn assert_id_map(j: &Value, file: &str, want: [&str; 3]) {
    let r = action(j, "reads", file);
    let fields: Vec<&str> = r["content"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(fields, want, "{file}: {r}");
}

// ------------------------------------------------------------------ 9. seccomp

fn errno_profile() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    })
}

#[test]
fn seccomp_errno_rule() {
    let env = Env::new();
    // Without a profile mkdir fails naturally: /tmp is on the read-only root.
    let (j, _) = probe_cfg(&env, &["--syscall", "mkdir", "--syscall", "getpid"], |_| {});
    assert_eq!(j["seccomp"], 0);
    let s = syscall(&j, "mkdir");
    assert_eq!(
        (s["ok"].clone(), s["errno"].clone()),
        (json!(false), json!("EROFS")),
        "{s}"
    );

    let (j, _) = probe_cfg(&env, &["--syscall", "mkdir", "--syscall", "getpid"], |c| {
        c["linux"]["seccomp"] = errno_profile();
    });
    assert_eq!(j["seccomp"], 2, "no seccomp filter installed");
    let s = syscall(&j, "mkdir");
    assert_eq!(
        (s["ok"].clone(), s["errno"].clone()),
        (json!(false), json!("EPERM")),
        "{s}"
    );
    let g = syscall(&j, "getpid");
    assert_eq!(g["ok"], true, "{g}");
    assert_eq!(g["ret"], 1, "{g}");
}

/// Without noNewPrivileges the filter is loaded before the capability drop,
/// so mica's last messages to its parent pass through it: a profile that
/// denies sendto/sendmsg (an allow-list without them) must still start.
#[test]
fn seccomp_denying_send_before_the_capability_drop() {
    let env = Env::new();
    let (j, _) = probe_cfg(&env, &["--syscall", "getpid"], |c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["sendto", "sendmsg"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    assert_eq!(j["seccomp"], 2, "no seccomp filter installed");
    assert_eq!(j["no_new_privs"], false, "{j}");
}

#[test]
fn seccomp_kill_process_rule() {
    let env = Env::new();
    let b = env.bundle("busybox", &probe_argv(&["--syscall", "mkdir"]), |c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"}]
        });
    });
    let (code, out, err) = run_limited(&env, &b, &[]);
    assert_eq!(code, 128 + libc::SIGSYS, "stdout={out} stderr={err}");
    // Killed during its actions, before it printed anything.
    assert!(!out.contains('{'), "probe survived: {out}");
}

// ------------------------------------------------------------------ 10. cgroups

/// Where the container's cgroup for `controller` lives on the host: below
/// this test process's own cgroup.
fn host_cgroup_dir(controller: &str, name: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    if v1.is_dir() {
        let own = own_cgroup(controller).unwrap_or_else(|| "/".into());
        v1.join(own.trim_start_matches('/')).join(name)
    } else {
        let own = own_cgroup("").unwrap_or_else(|| "/".into());
        Path::new("/sys/fs/cgroup")
            .join(own.trim_start_matches('/'))
            .join(name)
    }
}

fn cgroup_edit(name: String) -> impl FnOnce(&mut Value) {
    move |c| {
        c["linux"]["cgroupsPath"] = json!(name);
        c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        c["linux"]["resources"]["pids"] = json!({"limit": 50});
    }
}

#[test]
fn cgroup_limits_are_visible_and_removed() {
    let env = Env::new();
    let name = unique("mica-inside");
    let (j, _) = probe_cfg(&env, &[], cgroup_edit(name.clone()));
    let limits = &j["cgroup"]["limits"];
    assert_eq!(limits["memory"], 67108864, "{}", j["cgroup"]);
    assert_eq!(limits["pids"], 50, "{}", j["cgroup"]);
    for ctrl in ["memory", "pids"] {
        let dir = host_cgroup_dir(ctrl, &name);
        assert!(!dir.exists(), "{} still exists after run", dir.display());
    }
}

#[test]
fn cgroup_is_below_the_callers_cgroup() {
    let env = Env::new();
    let name = unique("mica-inside");
    // No cgroup namespace: the probe sees its full cgroup path.
    let (j, _) = probe_cfg(&env, &[], |c| {
        remove_ns(c, "cgroup");
        cgroup_edit(name.clone())(c);
    });
    let lines = strs(&j["cgroup"]["lines"]);
    let mem_line = lines
        .iter()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|x| x == "memory"))
        })
        .or_else(|| lines.iter().find(|l| l.starts_with("0::")))
        .unwrap_or_else(|| panic!("no memory cgroup line: {lines:?}"));
    let own = own_cgroup("memory")
        .or_else(|| own_cgroup(""))
        .unwrap_or_else(|| "/".into());
    let want = format!("{}/{name}", own.trim_end_matches('/'));
    assert!(
        mem_line.ends_with(&format!(":{want}")),
        "{mem_line:?} is not in {want}"
    );
    assert_eq!(j["cgroup"]["limits"]["memory"], 67108864, "{}", j["cgroup"]);
    assert_eq!(j["cgroup"]["limits"]["pids"], 50, "{}", j["cgroup"]);
    assert!(!host_cgroup_dir("memory", &name).exists());
}

// ------------------------------------------------------------------ 11. exit statuses

#[test]
fn exit_status_is_returned() {
    let env = Env::new();
    let b = env.bundle("busybox", &probe_argv(&["--exit", "7"]), |_| {});
    let (code, out, err) = run_limited(&env, &b, &[]);
    assert_eq!(code, 7, "stdout={out} stderr={err}");
    assert_eq!(parse_probe(&out)["pid"], 1);
    env.assert_state_empty();
}

#[test]
fn missing_command_fails_and_leaves_nothing() {
    let env = Env::new();
    let b = env.bundle("busybox", &["/nope"], |_| {});
    let (code, out, err) = run_limited(&env, &b, &[]);
    assert_ne!(code, 0, "stdout={out} stderr={err}");
    let e = lower(&err);
    assert!(
        e.contains("no such file or directory") || e.contains("not found"),
        "{err:?}"
    );
    assert!(err.contains("/nope"), "{err:?}");
    env.assert_state_empty();
    let (code, list, err) = mica_limited(&env, &["list", "-q"]);
    assert_eq!(code, 0, "list: {err}");
    assert_eq!(list.trim(), "");
}

#[test]
fn non_executable_command_is_permission_denied() {
    let env = Env::new();
    let b = env.bundle("busybox", &["/etc/passwd"], |_| {});
    let (code, out, err) = run_limited(&env, &b, &[]);
    assert_ne!(code, 0, "stdout={out} stderr={err}");
    assert!(lower(&err).contains("permission denied"), "{err:?}");
    env.assert_state_empty();
}

// ------------------------------------------------------------------ 12. console

/// Receive one fd sent with SCM_RIGHTS on `sock`.
fn recv_fd(sock: RawFd) -> std::io::Result<OwnedFd> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // A socket with a receive timeout is not restarted after a signal (or a
    // stop and continue): EINTR is a retry, not a failure.
    let n = loop {
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        let h = unsafe { &*cmsg };
        if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_RIGHTS {
            let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const RawFd) };
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Err(std::io::Error::other(format!(
        "no SCM_RIGHTS in a {n}-byte message"
    )))
}

/// Read the pty master until a full JSON line arrived, the slave side is
/// gone (EIO), or `timeout`.
fn read_master(master: &OwnedFd, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(i) = text.find('{') {
            if text[i..].contains('\n') {
                return text;
            }
        }
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out reading the console: {text:?}");
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if r <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return String::from_utf8_lossy(&got).into_owned();
        }
        got.extend_from_slice(&buf[..n as usize]);
    }
}

/// Kills a container's init (by the pid mica reported) when dropped, so a
/// failed test never leaves it blocked with the state dir locked.
struct KillOnDrop(Option<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn state_status(env: &Env, id: &str) -> String {
    let (code, out, err) = mica_limited(env, &["state", id]);
    assert_eq!(code, 0, "state {id}: {err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("state JSON ({e}): {out}"));
    v["status"].as_str().unwrap_or_default().to_string()
}

#[test]
fn terminal_via_console_socket() {
    let env = Env::new();
    let sock = env.tmp.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let b = env.bundle("busybox", &[PROBE], |c| {
        c["process"]["terminal"] = json!(true)
    });
    let id = env.id("tty");
    let pid_file = env.tmp.path().join("tty.pid");
    let log_err = env.tmp.path().join("create.err");
    let mut create = env
        .cmd()
        .args(["create", "--console-socket"])
        .arg(&sock)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("--bundle")
        .arg(&b)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_err).unwrap())
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(None);
    let end = Instant::now() + TIMEOUT;
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(st) = create.try_wait().unwrap() {
                    panic!(
                        "create exited ({st}) without connecting: {}",
                        std::fs::read_to_string(&log_err).unwrap_or_default()
                    );
                }
                if Instant::now() > end {
                    let _ = create.kill();
                    let _ = create.wait();
                    panic!("create never connected to the console socket");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    let master = recv_fd(conn.as_raw_fd()).expect("receive the pty master");
    let status = loop {
        if let Some(st) = create.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = create.kill();
            let _ = create.wait();
            panic!("create did not finish");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        status.success(),
        "create failed: {}",
        std::fs::read_to_string(&log_err).unwrap_or_default()
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    guard.0 = Some(pid);

    let (code, _, err) = mica_limited(&env, &["start", &id]);
    assert_eq!(code, 0, "start: {err}");
    let text = read_master(&master, TIMEOUT);
    let j = parse_probe(&text);
    for fd in 0..3 {
        let t = &j["tty"][fd];
        assert_eq!(t["fd"], fd, "{t}");
        assert_eq!(t["isatty"], true, "fd {fd} is not a tty: {}", j["tty"]);
        assert_eq!(t["ttyname"], "/dev/pts/0", "{}", j["tty"]);
    }
    assert_eq!(fd_nums(&j), vec![0, 1, 2], "fds: {}", j["fds"]);
    assert_eq!(j["pid"], 1);

    // Wait for it to stop, then a plain delete removes everything.
    let end = Instant::now() + TIMEOUT;
    while state_status(&env, &id) != "stopped" {
        assert!(Instant::now() < end, "container never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, _, err) = mica_limited(&env, &["delete", &id]);
    assert_eq!(code, 0, "delete: {err}");
    env.assert_state_empty();
}

/// `state` (and so `start`) must answer while the init waits for `start`:
/// the init must not keep create's lock on the state dir.
#[test]
fn created_container_answers_state_and_starts() {
    let env = Env::new();
    let b = env.bundle("busybox", &[PROBE], |_| {});
    let id = env.id("created");
    let pid_file = env.tmp.path().join("created.pid");
    let pf = pid_file.to_str().unwrap().to_string();
    let bs = b.to_str().unwrap().to_string();
    let (code, _, err) = mica_limited(&env, &["create", "--pid-file", &pf, "--bundle", &bs, &id]);
    assert_eq!(code, 0, "create: {err}");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = KillOnDrop(Some(pid));
    assert_eq!(state_status(&env, &id), "created");
    let (code, _, err) = mica_limited(&env, &["start", &id]);
    assert_eq!(code, 0, "start: {err}");
}

/// A time namespace with offsets: the boot clock inside is a year ahead,
/// and the process is still pid 1 (the second fork made it so).
#[test]
fn time_namespace_offsets() {
    let env = Env::new();
    let (j, _) = probe_cfg(&env, &["--read", "/proc/uptime"], |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] =
            json!({"boottime": {"secs": 31_536_000}, "monotonic": {"secs": 1000}});
    });
    assert_eq!(j["pid"], 1);
    // The first field of /proc/uptime: seconds since boot.
    let seconds = |s: &str| -> f64 { s.split_whitespace().next().unwrap().parse().unwrap() };
    let uptime = seconds(
        action(&j, "reads", "/proc/uptime")["content"]
            .as_str()
            .unwrap(),
    );
    let host = seconds(&std::fs::read_to_string("/proc/uptime").unwrap());
    assert!(uptime - host > 31_535_000.0, "inside {uptime}, host {host}");
    assert_ne!(j["namespaces"]["time"], json!(host_ns("time")));
}

/// `--no-pivot` (MS_MOVE + chroot) gives the same read-only root.
#[test]
fn no_pivot_keeps_the_root_read_only() {
    let env = Env::new();
    let b = env.bundle("busybox", &probe_argv(&[]), |_| {});
    let (code, out, err) = run_limited(&env, &b, &["--no-pivot"]);
    assert_eq!(code, 0, "{err}");
    let j = parse_probe(&out);
    assert_eq!(j["root_writable"]["errno"], "EROFS");
    assert_eq!(j["cwd"], "/");
    assert_options(mount_at(&j, "/"), &["ro", "nosuid", "nodev"]);
}

/// linux.devices: each node made with its type, numbers, mode and owner,
/// in /dev and below it (the directory made on the way), beside the
/// default ones.
#[test]
fn config_devices_are_made() {
    let env = Env::new();
    let argv = [
        "/bin/stat",
        "-c",
        "%n %F %t:%T %a %u:%g",
        "/dev/fuse",
        "/dev/net/tun",
        "/dev/null",
    ];
    let b = env.bundle("busybox", &argv, |c| {
        c["linux"]["devices"] = json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 1, "gid": 2},
            {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 0o666, "uid": 0, "gid": 0},
        ]);
        // mknod is a device access the cgroup must allow.
        let rules = &mut c["linux"]["resources"]["devices"];
        if !rules.is_array() {
            *rules = json!([]);
        }
        for minor in [229, 200] {
            rules.as_array_mut().unwrap().push(
                json!({"allow": true, "type": "c", "major": 10, "minor": minor, "access": "rwm"}),
            );
        }
    });
    let (code, out, err) = run_limited(&env, &b, &[]);
    assert_eq!(code, 0, "stdout={out} stderr={err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "/dev/fuse character special file a:e5 640 1:2",
            "/dev/net/tun character special file a:c8 666 0:0",
            "/dev/null character special file 1:3 666 0:0",
        ],
        "stderr={err}"
    );
}
