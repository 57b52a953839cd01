//! mica-probe: runs inside a test container and prints ONE JSON object on
//! stdout describing the process environment it sees (ids, caps, mounts,
//! rlimits, cgroup limits, fds, ...), so tests can assert on structured data.
//!
//! Rules: never panic, never abort on a failed probe. A fact that cannot be
//! read is reported as `null` and the reason is appended to `errors`.
//! See ../README.md for the CLI and the JSON schema.
//!
//! `#![no_main]`: we provide the C `main` ourselves so Rust's runtime start-up
//! does not touch the inherited state we want to report (it would reopen
//! closed fds 0-2 on /dev/null and set SIGPIPE to ignored).
#![no_main]

mod tables;

use serde_json::{json, Map, Value};
use std::ffi::{CStr, CString, OsStr};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use tables::{cap_names, errno_name, signal_names};

const USAGE: &str = "\
usage: mica-probe [options]
Prints one JSON object describing the process environment on stdout.
  --write PATH       create/truncate PATH and write to it (repeatable) -> writes
  --read PATH        read PATH (file content or dir entries) (repeatable) -> reads
  --mkdir PATH       mkdir PATH (repeatable) -> mkdirs
  --syscall NAME     raw syscall (repeatable) -> syscalls; NAME is one of:
                     getpid getppid getuid getcwd uname open mkdir chmod chown
                     personality unshare setuid sethostname mount kill socket keyctl
  --remount-root-rw  try to remount / read-write -> remount_root
  --stdin            read stdin to EOF -> stdin
  --sleep SECS       after printing, sleep SECS (float or 'inf'); SIGTERM/INT/HUP
                     exit 128+signo
  --ignore-term      ignore SIGTERM while sleeping
  --exit N           exit status (default 0; 2 on bad arguments)
  --quiet            don't print the JSON
  --pretty           pretty-print the JSON
  --help             this text
Options also accept --opt=VALUE.";

/// Names accepted by --syscall (see do_syscall).
const SYSCALLS: &[&str] = &[
    "getpid",
    "getppid",
    "getuid",
    "getcwd",
    "uname",
    "open",
    "mkdir",
    "chmod",
    "chown",
    "personality",
    "unshare",
    "setuid",
    "sethostname",
    "mount",
    "kill",
    "socket",
    "keyctl",
];

/// Read-buffer cap for --read and --stdin.
const MAX_READ: u64 = 1 << 20;

#[derive(Default)]
struct Opts {
    writes: Vec<PathBuf>,
    reads: Vec<PathBuf>,
    mkdirs: Vec<PathBuf>,
    syscalls: Vec<String>,
    remount_root_rw: bool,
    stdin: bool,
    sleep: Option<f64>,
    ignore_term: bool,
    exit: i32,
    quiet: bool,
    pretty: bool,
    help: bool,
}

/// Non-fatal problems, reported as the `errors` array.
struct Errors(Vec<String>);

impl Errors {
    fn add(&mut self, what: &str, why: impl std::fmt::Display) {
        self.0.push(format!("{}: {}", what, why));
    }
    /// Ok(v) -> Some(v); Err(e) -> record and None.
    fn ok<T>(&mut self, what: &str, r: std::io::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(what, io_errno(&e));
                None
            }
        }
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn io_errno(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno_name(n),
        None => e.to_string(),
    }
}

/// {"ok": true, "errno": null} or {"ok": false, "errno": "EROFS"}
fn outcome(r: &Result<(), String>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("ok".into(), r.is_ok().into());
    m.insert("errno".into(), r.as_ref().err().cloned().into());
    m
}

/// Convert a raw "-1 means failure" return into a Result carrying the errno name.
fn check(ret: i64) -> Result<i64, String> {
    if ret < 0 {
        Err(errno_name(last_errno()))
    } else {
        Ok(ret)
    }
}

fn lossy(p: &OsStr) -> String {
    String::from_utf8_lossy(p.as_bytes()).into_owned()
}

fn cstr_field(p: &[libc::c_char]) -> String {
    // SAFETY: utsname fields are NUL-terminated by the kernel.
    unsafe { CStr::from_ptr(p.as_ptr()) }.to_string_lossy().into_owned()
}

/// A limit-style value: integer when it parses, else the raw string ("max").
fn num_or_str(s: &str) -> Value {
    let s = s.trim();
    match s.parse::<i64>() {
        Ok(n) => n.into(),
        Err(_) => s.into(),
    }
}

// ---------------------------------------------------------------- arguments

fn parse_args(args: &[Vec<u8>], errors: &mut Errors) -> Opts {
    let mut o = Opts::default();
    let mut i = 1;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        // --opt=VALUE form
        let (name, mut inline): (&[u8], Option<&[u8]>) = match arg.iter().position(|&b| b == b'=') {
            Some(eq) if arg.starts_with(b"--") => (&arg[..eq], Some(&arg[eq + 1..])),
            _ => (arg.as_slice(), None),
        };
        let name_s = String::from_utf8_lossy(name).into_owned();
        let takes_value = matches!(name, b"--write" | b"--read" | b"--mkdir" | b"--syscall" | b"--sleep" | b"--exit");
        let value: Option<Vec<u8>> = if takes_value {
            match inline.take() {
                Some(v) => Some(v.to_vec()),
                None if i < args.len() => {
                    i += 1;
                    Some(args[i - 1].clone())
                }
                None => {
                    errors.add("args", format!("{} needs a value", name_s));
                    continue;
                }
            }
        } else {
            None
        };
        if inline.is_some() {
            errors.add("args", format!("{} takes no value", name_s));
            continue;
        }
        let path = |v: &Option<Vec<u8>>| PathBuf::from(OsStr::from_bytes(v.as_deref().unwrap_or_default()));
        let text = |v: &Option<Vec<u8>>| String::from_utf8_lossy(v.as_deref().unwrap_or_default()).into_owned();
        match name {
            b"--write" => o.writes.push(path(&value)),
            b"--read" => o.reads.push(path(&value)),
            b"--mkdir" => o.mkdirs.push(path(&value)),
            b"--syscall" => {
                let n = text(&value);
                if !SYSCALLS.contains(&n.as_str()) {
                    errors.add("args", format!("unknown --syscall name {:?}", n));
                }
                o.syscalls.push(n);
            }
            b"--sleep" => match text(&value).parse::<f64>() {
                Ok(s) if s >= 0.0 => o.sleep = Some(s),
                _ => errors.add("args", format!("bad --sleep value {:?}", text(&value))),
            },
            b"--exit" => match text(&value).parse::<i32>() {
                Ok(n) => o.exit = n,
                Err(_) => errors.add("args", format!("bad --exit value {:?}", text(&value))),
            },
            b"--remount-root-rw" => o.remount_root_rw = true,
            b"--stdin" => o.stdin = true,
            b"--ignore-term" => o.ignore_term = true,
            b"--quiet" => o.quiet = true,
            b"--pretty" => o.pretty = true,
            b"--help" | b"-h" => o.help = true,
            _ => errors.add("args", format!("unknown argument {:?}", name_s)),
        }
    }
    o
}

// ---------------------------------------------------------------- /proc/self/status

struct Status(Vec<(String, String)>);

impl Status {
    fn read(errors: &mut Errors) -> Status {
        let text = errors.ok("/proc/self/status", std::fs::read_to_string("/proc/self/status"));
        Status(
            text.unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .collect(),
        )
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    fn hex(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| u64::from_str_radix(v, 16).ok())
    }
}

// ---------------------------------------------------------------- probes

fn ids() -> (Value, Value) {
    let (mut r, mut e, mut s) = (0, 0, 0);
    let (mut gr, mut ge, mut gs) = (0, 0, 0);
    // SAFETY: plain out-pointers.
    let ok_u = unsafe { libc::getresuid(&mut r, &mut e, &mut s) } == 0;
    let ok_g = unsafe { libc::getresgid(&mut gr, &mut ge, &mut gs) } == 0;
    let u = if ok_u { json!([r, e, s]) } else { Value::Null };
    let g = if ok_g { json!([gr, ge, gs]) } else { Value::Null };
    (u, g)
}

fn groups(errors: &mut Errors) -> Value {
    // SAFETY: size query with n=0, then a buffer of that size.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        errors.add("groups", errno_name(last_errno()));
        return Value::Null;
    }
    let mut v: Vec<libc::gid_t> = vec![0; n as usize];
    let n = unsafe { libc::getgroups(n, v.as_mut_ptr()) };
    if n < 0 {
        errors.add("groups", errno_name(last_errno()));
        return Value::Null;
    }
    v.truncate(n as usize);
    json!(v)
}

fn umask(status: &Status) -> u32 {
    match status.get("Umask").and_then(|v| u32::from_str_radix(v, 8).ok()) {
        Some(m) => m,
        None => {
            // SAFETY: umask cannot fail; restore the old value immediately.
            let m = unsafe { libc::umask(0o022) };
            unsafe { libc::umask(m) };
            m as u32
        }
    }
}

fn caps(status: &Status) -> (Value, Value) {
    let mut names = Map::new();
    let mut hex = Map::new();
    for (field, key) in [
        ("effective", "CapEff"),
        ("permitted", "CapPrm"),
        ("inheritable", "CapInh"),
        ("bounding", "CapBnd"),
        ("ambient", "CapAmb"),
    ] {
        let mask = status.hex(key);
        names.insert(field.into(), mask.map(|m| json!(cap_names(m))).unwrap_or(Value::Null));
        hex.insert(field.into(), status.get(key).map(Value::from).unwrap_or(Value::Null));
    }
    (names.into(), hex.into())
}

fn fds(errors: &mut Errors) -> Value {
    let mut out = Vec::new();
    // SAFETY: opendir/readdir/closedir on a valid C string; dirent read before next readdir.
    unsafe {
        let dir = libc::opendir(c"/proc/self/fd".as_ptr());
        if dir.is_null() {
            errors.add("fds", errno_name(last_errno()));
            return Value::Null;
        }
        let own = libc::dirfd(dir);
        let mut nums = Vec::new();
        loop {
            let ent = libc::readdir(dir);
            if ent.is_null() {
                break;
            }
            let name = CStr::from_ptr((*ent).d_name.as_ptr());
            if let Ok(fd) = name.to_string_lossy().parse::<i32>() {
                if fd != own {
                    nums.push(fd);
                }
            }
        }
        libc::closedir(dir);
        nums.sort();
        for fd in nums {
            let target = std::fs::read_link(format!("/proc/self/fd/{}", fd))
                .map(|p| Value::from(lossy(p.as_os_str())))
                .unwrap_or(Value::Null);
            out.push(json!({"fd": fd, "target": target}));
        }
    }
    out.into()
}

/// Undo mountinfo's octal escapes (\040 = space, \011, \012, \134).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mounts(errors: &mut Errors) -> Value {
    let Some(text) = errors.ok("mounts", std::fs::read_to_string("/proc/self/mountinfo")) else {
        return Value::Null;
    };
    let split = |s: &str| -> Vec<String> { s.split(',').filter(|x| !x.is_empty()).map(String::from).collect() };
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if sep < 6 || f.len() < sep + 4 {
            errors.add("mounts", format!("unparsable line {:?}", line));
            continue;
        }
        out.push(json!({
            "mount_id": num_or_str(f[0]),
            "parent_id": num_or_str(f[1]),
            "major_minor": f[2],
            "root": unescape(f[3]),
            "mount_point": unescape(f[4]),
            "options": split(f[5]),
            "propagation": f[6..sep],
            "fstype": f[sep + 1],
            "source": unescape(f[sep + 2]),
            "super_options": split(f[sep + 3]),
        }));
    }
    out.into()
}

fn rlimits(errors: &mut Errors) -> Value {
    let mut m = Map::new();
    let conv = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            json!(-1)
        } else {
            json!(v)
        }
    };
    for &(res, name) in tables::RLIMITS {
        let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: out-pointer to a local.
        if unsafe { libc::getrlimit(res, &mut rl) } == 0 {
            m.insert(name.into(), json!([conv(rl.rlim_cur), conv(rl.rlim_max)]));
        } else {
            errors.add(name, errno_name(last_errno()));
            m.insert(name.into(), Value::Null);
        }
    }
    m.into()
}

/// First readable file among `candidates`: (path, trimmed content).
fn read_first(candidates: &[String]) -> Option<(String, String)> {
    candidates.iter().find_map(|p| std::fs::read_to_string(p).ok().map(|c| (p.clone(), c.trim().to_string())))
}

fn cgroup(errors: &mut Errors) -> Value {
    let Some(text) = errors.ok("cgroup", std::fs::read_to_string("/proc/self/cgroup")) else {
        return Value::Null;
    };
    let lines: Vec<String> = text.lines().map(String::from).collect();
    // (controllers, path) per line; a v2-only host has just "0::/path".
    let entries: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect();
    let v1 = entries.iter().any(|(c, _)| !c.is_empty() && !c.starts_with("name="));
    let mut files: Map<String, Value> = Map::new();
    let mut limits: Map<String, Value> = Map::new();

    // Candidate paths for FILE of CONTROLLER: first the process's own cgroup dir
    // (no cgroupns, whole hierarchy mounted), then the mount root (cgroupns or
    // runtime bind-mounted the container's cgroup at /sys/fs/cgroup).
    let candidates = |controller: &str, file: &str| -> Vec<String> {
        let mut v = Vec::new();
        if v1 {
            for (ctrls, path) in &entries {
                if ctrls.split(',').any(|c| c == controller) {
                    let path = path.trim_end_matches('/');
                    for base in [ctrls.as_str(), controller] {
                        v.push(format!("/sys/fs/cgroup/{}{}/{}", base, path, file));
                        v.push(format!("/sys/fs/cgroup/{}/{}", base, file));
                    }
                }
            }
        } else if let Some((_, path)) = entries.iter().find(|(c, _)| c.is_empty()) {
            v.push(format!("/sys/fs/cgroup{}/{}", path.trim_end_matches('/'), file));
            v.push(format!("/sys/fs/cgroup/{}", file));
        }
        v
    };
    let mut get = |key: &str, controller: &str, file: &str| -> Option<String> {
        let found = read_first(&candidates(controller, file));
        files.insert(key.into(), found.as_ref().map(|(p, _)| Value::from(p.as_str())).unwrap_or(Value::Null));
        found.map(|(_, c)| c)
    };
    if v1 {
        let mem = get("memory", "memory", "memory.limit_in_bytes");
        let pids = get("pids", "pids", "pids.max");
        let quota = get("cpu_quota", "cpu", "cpu.cfs_quota_us");
        let period = get("cpu_period", "cpu", "cpu.cfs_period_us");
        limits.insert("memory".into(), mem.map(|s| num_or_str(&s)).unwrap_or(Value::Null));
        limits.insert("pids".into(), pids.map(|s| num_or_str(&s)).unwrap_or(Value::Null));
        limits.insert("cpu_quota".into(), quota.map(|s| num_or_str(&s)).unwrap_or(Value::Null));
        limits.insert("cpu_period".into(), period.map(|s| num_or_str(&s)).unwrap_or(Value::Null));
    } else {
        let mem = get("memory", "memory", "memory.max");
        let pids = get("pids", "pids", "pids.max");
        let cpu = get("cpu_quota", "cpu", "cpu.max");
        files.insert("cpu_period".into(), files.get("cpu_quota").cloned().unwrap_or(Value::Null));
        limits.insert("memory".into(), mem.map(|s| num_or_str(&s)).unwrap_or(Value::Null));
        limits.insert("pids".into(), pids.map(|s| num_or_str(&s)).unwrap_or(Value::Null));
        let mut parts = cpu.as_deref().unwrap_or("").split_whitespace().map(num_or_str);
        limits.insert("cpu_quota".into(), parts.next().unwrap_or(Value::Null));
        limits.insert("cpu_period".into(), parts.next().unwrap_or(Value::Null));
    }
    json!({
        "version": if v1 { 1 } else { 2 },
        "lines": lines,
        "limits": limits,
        "files": files,
    })
}

/// Create (O_CREAT|O_EXCL) and remove /.mica-probe-<pid>.
fn root_writable(pid: i32) -> Value {
    let path = CString::new(format!("/.mica-probe-{}", pid)).unwrap_or_default();
    // SAFETY: valid C string; fd closed right away.
    let fd =
        unsafe { libc::open(path.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC, 0o600) };
    let r = if fd < 0 {
        Err(errno_name(last_errno()))
    } else {
        unsafe {
            libc::close(fd);
            libc::unlink(path.as_ptr());
        }
        Ok(())
    };
    outcome(&r).into()
}

fn tty() -> Value {
    (0..3)
        .map(|fd| {
            // SAFETY: isatty/ttyname_r with a local buffer.
            let is = unsafe { libc::isatty(fd) } == 1;
            let mut buf = [0 as libc::c_char; 256];
            let name = if is && unsafe { libc::ttyname_r(fd, buf.as_mut_ptr(), buf.len()) } == 0 {
                Value::from(cstr_field(&buf))
            } else {
                Value::Null
            };
            json!({"fd": fd, "isatty": is, "ttyname": name})
        })
        .collect::<Vec<_>>()
        .into()
}

fn namespaces() -> Value {
    let mut m = Map::new();
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts"] {
        let v = std::fs::read_link(format!("/proc/self/ns/{}", ns))
            .map(|p| Value::from(lossy(p.as_os_str())))
            .unwrap_or(Value::Null);
        m.insert(ns.into(), v);
    }
    m.into()
}

// ---------------------------------------------------------------- actions

fn do_write(path: &PathBuf) -> Value {
    let mut m = Map::new();
    let r = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o666).open(path);
    let (res, stage, mode) = match r {
        Err(e) => (Err(io_errno(&e)), "open", Value::Null),
        Ok(mut f) => {
            let mode = f.metadata().map(|md| json!(md.permissions().mode() & 0o7777)).unwrap_or(Value::Null);
            (f.write_all(b"mica-probe\n").map_err(|e| io_errno(&e)), "write", mode)
        }
    };
    m.insert("path".into(), lossy(path.as_os_str()).into());
    m.insert("stage".into(), if res.is_err() { stage.into() } else { Value::Null });
    m.extend(outcome(&res));
    m.insert("mode".into(), mode);
    m.into()
}

fn do_read(path: &PathBuf) -> Value {
    let mut m = Map::new();
    m.insert("path".into(), lossy(path.as_os_str()).into());
    let mut content = Value::Null;
    let mut entries = Value::Null;
    let res = match std::fs::File::open(path) {
        Err(e) => Err(io_errno(&e)),
        Ok(f) => {
            let mut buf = Vec::new();
            match f.take(MAX_READ).read_to_end(&mut buf) {
                Ok(_) => {
                    content = String::from_utf8_lossy(&buf).into_owned().into();
                    Ok(())
                }
                Err(e) if e.raw_os_error() == Some(libc::EISDIR) => match std::fs::read_dir(path) {
                    Ok(rd) => {
                        let mut names: Vec<String> = rd.flatten().map(|d| lossy(&d.file_name())).collect();
                        names.sort();
                        entries = json!(names);
                        Ok(())
                    }
                    Err(e) => Err(io_errno(&e)),
                },
                Err(e) => Err(io_errno(&e)),
            }
        }
    };
    m.extend(outcome(&res));
    m.insert("content".into(), content);
    m.insert("entries".into(), entries);
    m.into()
}

fn do_mkdir(path: &PathBuf) -> Value {
    let mut m = Map::new();
    let res = std::fs::DirBuilder::new().mode(0o777).create(path).map_err(|e| io_errno(&e));
    let mode = match res {
        Ok(()) => std::fs::metadata(path).map(|md| json!(md.permissions().mode() & 0o7777)).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    m.insert("path".into(), lossy(path.as_os_str()).into());
    m.extend(outcome(&res));
    m.insert("mode".into(), mode);
    m.into()
}

/// Raw syscalls for seccomp tests. Arguments are chosen to be harmless: a
/// syscall that seccomp lets through fails with its "natural" errno (e.g.
/// ENOENT for a missing path), so tests can tell it apart from the errno the
/// seccomp profile returns.
fn do_syscall(name: &str, pid: i32, hostname: &str) -> Value {
    const MISSING: &CStr = c"/.mica-probe-nonexistent/x";
    let mut buf = [0u8; 4096];
    // SAFETY: every call gets valid pointers/buffers owned by this frame.
    let ret: Option<i64> = unsafe {
        match name {
            "getpid" => Some(libc::syscall(libc::SYS_getpid)),
            "getppid" => Some(libc::syscall(libc::SYS_getppid)),
            "getuid" => Some(libc::syscall(libc::SYS_getuid)),
            "getcwd" => Some(libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len())),
            "uname" => {
                let mut u: libc::utsname = std::mem::zeroed();
                Some(libc::syscall(libc::SYS_uname, &mut u as *mut libc::utsname))
            }
            "open" => {
                let r = libc::syscall(
                    libc::SYS_openat,
                    libc::AT_FDCWD,
                    c"/".as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                );
                if r >= 0 {
                    libc::close(r as i32);
                }
                Some(r)
            }
            "mkdir" => {
                let p = CString::new(format!("/tmp/.mica-probe-sc-{}", pid)).unwrap_or_default();
                let r = libc::syscall(libc::SYS_mkdir, p.as_ptr(), 0o700);
                if r == 0 {
                    libc::rmdir(p.as_ptr());
                }
                Some(r)
            }
            "chmod" => Some(libc::syscall(libc::SYS_chmod, MISSING.as_ptr(), 0o644)),
            "chown" => Some(libc::syscall(libc::SYS_chown, MISSING.as_ptr(), libc::uid_t::MAX, libc::gid_t::MAX)),
            "personality" => Some(libc::syscall(libc::SYS_personality, 0xffff_ffffu64)),
            "unshare" => Some(libc::syscall(libc::SYS_unshare, 0)),
            "setuid" => Some(libc::syscall(libc::SYS_setuid, libc::geteuid())),
            "sethostname" => Some(libc::syscall(libc::SYS_sethostname, hostname.as_ptr(), hostname.len())),
            "mount" => Some(libc::syscall(
                libc::SYS_mount,
                c"none".as_ptr(),
                MISSING.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null::<u8>(),
            )),
            "kill" => Some(libc::syscall(libc::SYS_kill, libc::getpid(), 0)),
            "socket" => {
                let r = libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                if r >= 0 {
                    libc::close(r as i32);
                }
                Some(r)
            }
            // KEYCTL_GET_KEYRING_ID of KEY_SPEC_SESSION_KEYRING, no create.
            "keyctl" => Some(libc::syscall(libc::SYS_keyctl, 0, -3, 0)),
            _ => None,
        }
    };
    match ret {
        None => {
            json!({"name": name, "ok": false, "ret": null, "errno": null, "error": "unknown syscall name"})
        }
        Some(r) => {
            let res = check(r);
            json!({"name": name, "ok": res.is_ok(), "ret": r, "errno": res.err()})
        }
    }
}

fn remount_root(pid: i32) -> Value {
    let mount = |flags: libc::c_ulong| -> Result<(), String> {
        // SAFETY: NULL source/fstype/data are valid for a remount.
        let r = unsafe { libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), flags, std::ptr::null()) };
        check(r as i64).map(|_| ())
    };
    let bind = mount(libc::MS_REMOUNT | libc::MS_BIND);
    let plain = mount(libc::MS_REMOUNT);
    json!({
        "bind_remount": outcome(&bind),
        "remount": outcome(&plain),
        "root_writable_after": root_writable(pid),
    })
}

// ---------------------------------------------------------------- signals, sleep

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) }
}

fn install_handlers(ignore_term: bool) {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: sigaction with a zeroed struct and a valid handler.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = if sig == libc::SIGTERM && ignore_term {
                libc::SIG_IGN
            } else {
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t
            };
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn sleep_for(secs: f64) {
    if !secs.is_finite() {
        loop {
            // SAFETY: pause just waits for a signal.
            unsafe { libc::pause() };
        }
    }
    let mut ts = libc::timespec { tv_sec: secs.trunc() as libc::time_t, tv_nsec: (secs.fract() * 1e9) as libc::c_long };
    loop {
        let mut rem = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: valid timespec pointers.
        if unsafe { libc::nanosleep(&ts, &mut rem) } == 0 || last_errno() != libc::EINTR {
            return;
        }
        ts = rem;
    }
}

// ---------------------------------------------------------------- main

#[no_mangle]
#[allow(clippy::not_unsafe_ptr_arg_deref)] // argv comes from the C runtime
pub extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    let args: Vec<Vec<u8>> = (0..argc.max(0) as isize)
        // SAFETY: the C runtime passes argc valid NUL-terminated strings.
        .map(|i| unsafe { CStr::from_ptr(*argv.offset(i)) }.to_bytes().to_vec())
        .collect();
    let mut errors = Errors(Vec::new());
    let opts = parse_args(&args, &mut errors);
    if opts.help {
        let _ = writeln!(std::io::stdout(), "{}", USAGE);
        return 0;
    }
    let bad_args = !errors.0.is_empty();

    let mut r = Map::new();
    let status = Status::read(&mut errors);
    // SAFETY: trivial libc getters.
    let (pid, ppid, pgid, sid) = unsafe { (libc::getpid(), libc::getppid(), libc::getpgid(0), libc::getsid(0)) };
    r.insert("args".into(), args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().into());
    r.insert("pid".into(), pid.into());
    r.insert("ppid".into(), ppid.into());
    r.insert("pgid".into(), pgid.into());
    r.insert("sid".into(), sid.into());
    let (u, g) = ids();
    r.insert("uid".into(), u.get(0).cloned().unwrap_or(Value::Null));
    r.insert("euid".into(), u.get(1).cloned().unwrap_or(Value::Null));
    r.insert("suid".into(), u.get(2).cloned().unwrap_or(Value::Null));
    r.insert("gid".into(), g.get(0).cloned().unwrap_or(Value::Null));
    r.insert("egid".into(), g.get(1).cloned().unwrap_or(Value::Null));
    r.insert("sgid".into(), g.get(2).cloned().unwrap_or(Value::Null));
    r.insert("groups".into(), groups(&mut errors));
    let um = umask(&status);
    r.insert("umask".into(), um.into());
    r.insert("umask_octal".into(), format!("{:04o}", um).into());
    r.insert(
        "env".into(),
        std::env::vars_os().map(|(k, v)| format!("{}={}", lossy(&k), lossy(&v))).collect::<Vec<_>>().into(),
    );
    let cwd = errors.ok("cwd", std::env::current_dir());
    r.insert("cwd".into(), cwd.map(|p| Value::from(lossy(p.as_os_str()))).unwrap_or(Value::Null));
    let exe = errors.ok("exe", std::fs::read_link("/proc/self/exe"));
    r.insert("exe".into(), exe.map(|p| Value::from(lossy(p.as_os_str()))).unwrap_or(Value::Null));

    // SAFETY: zeroed utsname is a valid out-buffer.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    let hostname = if unsafe { libc::uname(&mut uts) } == 0 {
        r.insert("domainname".into(), cstr_field(&uts.domainname).into());
        cstr_field(&uts.nodename)
    } else {
        errors.add("uname", errno_name(last_errno()));
        r.insert("domainname".into(), Value::Null);
        String::new()
    };
    r.insert("hostname".into(), if hostname.is_empty() { Value::Null } else { hostname.clone().into() });

    let (caps, caps_hex) = caps(&status);
    r.insert("caps".into(), caps);
    r.insert("caps_hex".into(), caps_hex);

    // SAFETY: prctl getters with unused args zero.
    let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    r.insert(
        "no_new_privs".into(),
        match check(nnp as i64) {
            Ok(v) => (v == 1).into(),
            Err(e) => {
                errors.add("no_new_privs", e);
                Value::Null
            }
        },
    );
    r.insert("seccomp".into(), status.get("Seccomp").and_then(|v| v.parse::<i64>().ok()).into());
    r.insert("seccomp_filters".into(), status.get("Seccomp_filters").and_then(|v| v.parse::<i64>().ok()).into());
    let sc = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    r.insert(
        "seccomp_prctl".into(),
        match check(sc as i64) {
            Ok(v) => v.into(),
            Err(e) => e.into(),
        },
    );
    let oom = errors.ok("oom_score_adj", std::fs::read_to_string("/proc/self/oom_score_adj"));
    r.insert("oom_score_adj".into(), oom.and_then(|s| s.trim().parse::<i64>().ok()).into());
    let pers = unsafe { libc::personality(0xffff_ffff) };
    r.insert(
        "personality".into(),
        match check(pers as i64) {
            Ok(v) => v.into(),
            Err(e) => {
                errors.add("personality", e);
                Value::Null
            }
        },
    );
    r.insert(
        "signals".into(),
        json!({
            "blocked": status.hex("SigBlk").map(signal_names),
            "ignored": status.hex("SigIgn").map(signal_names),
        }),
    );
    r.insert("namespaces".into(), namespaces());
    r.insert("fds".into(), fds(&mut errors));
    r.insert("mounts".into(), mounts(&mut errors));
    r.insert("rlimits".into(), rlimits(&mut errors));
    r.insert("cgroup".into(), cgroup(&mut errors));
    r.insert("root_writable".into(), root_writable(pid));
    r.insert("tty".into(), tty());

    // Actions, in this fixed order: stdin, mkdirs, writes, reads, syscalls, remount.
    r.insert(
        "stdin".into(),
        if opts.stdin {
            let mut buf = Vec::new();
            match std::io::stdin().lock().take(MAX_READ).read_to_end(&mut buf) {
                Ok(_) => String::from_utf8_lossy(&buf).into_owned().into(),
                Err(e) => {
                    errors.add("stdin", io_errno(&e));
                    Value::Null
                }
            }
        } else {
            Value::Null
        },
    );
    r.insert("mkdirs".into(), opts.mkdirs.iter().map(do_mkdir).collect::<Vec<_>>().into());
    r.insert("writes".into(), opts.writes.iter().map(do_write).collect::<Vec<_>>().into());
    r.insert("reads".into(), opts.reads.iter().map(do_read).collect::<Vec<_>>().into());
    r.insert("syscalls".into(), opts.syscalls.iter().map(|n| do_syscall(n, pid, &hostname)).collect::<Vec<_>>().into());
    r.insert("remount_root".into(), if opts.remount_root_rw { remount_root(pid) } else { Value::Null });
    r.insert("errors".into(), errors.0.into());

    if opts.sleep.is_some() {
        // Before printing, so a test that waits for the JSON then signals is race-free.
        install_handlers(opts.ignore_term);
    }
    if !opts.quiet {
        let v = Value::Object(r);
        let text = if opts.pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.unwrap_or_else(|e| format!("{{\"errors\":[\"json: {}\"]}}", e)).as_bytes());
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
    if let Some(secs) = opts.sleep {
        sleep_for(secs);
    }
    if bad_args {
        2
    } else {
        opts.exit
    }
}
