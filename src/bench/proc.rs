//! Running a command and measuring it: wall time from spawn to the return of
//! `wait4`, and the peak RSS `wait4` reports (the process and the children it
//! reaped, e.g. `runc init`).

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one command did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Exit status as a shell shows it (128+N for signal N).
    pub status: i32,
    pub elapsed: Duration,
    /// `ru_maxrss` in KiB.
    pub maxrss_kib: u64,
    pub timed_out: bool,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.status == 0 && !self.timed_out
    }
}

/// Where a command's output goes: files, so a container that inherits them
/// never keeps a pipe open behind our back.
pub struct Output {
    pub out: File,
    pub err: File,
}

impl Output {
    /// Empty files `dir/name.out` and `.err`. One already empty is not
    /// truncated (a file truncated to zero is flushed to disk when closed on
    /// ext4, a disk write per start on the CPUs the contenders run on).
    pub fn new(dir: &Path, name: &str) -> io::Result<Output> {
        let open = |ext: &str| {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join(format!("{name}.{ext}")))?;
            if f.metadata()?.len() > 0 {
                f.set_len(0)?;
            }
            Ok::<_, io::Error>(f)
        };
        Ok(Output {
            out: open("out")?,
            err: open("err")?,
        })
    }

    /// Empty both files before the next command.
    pub fn reset(&mut self) -> io::Result<()> {
        for f in [&mut self.out, &mut self.err] {
            f.set_len(0)?;
            f.rewind()?;
        }
        Ok(())
    }

    fn read(f: &mut File) -> String {
        let mut s = String::new();
        let _ = f.rewind();
        let _ = f.take(1 << 20).read_to_string(&mut s);
        s
    }

    pub fn stdout(&mut self) -> String {
        Self::read(&mut self.out)
    }

    pub fn stderr(&mut self) -> String {
        Self::read(&mut self.err)
    }

    /// The last non-empty line of stderr (what a failure row shows).
    pub fn last_err_line(&mut self) -> String {
        last_line(&self.stderr())
    }
}

/// The last non-empty line of `text`, trimmed (the reason a command gives).
pub fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Options for [`run`].
#[derive(Default)]
pub struct Spawn<'a> {
    /// Enter this mount namespace (an fd of `/proc/PID/ns/mnt`) before exec.
    pub mount_ns: Option<RawFd>,
    pub timeout: Option<Duration>,
    pub output: Option<&'a Output>,
    /// Through the stopwatch (when there is one): the start is a timed sample
    /// whose peak RSS counts. Starts that are only counted (throughput) or
    /// only set things up go straight, so the harness costs them nothing extra.
    pub timed: bool,
}

static STOPWATCH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Start every timed command through `mica-stopwatch` (see stopwatch.rs):
/// its peak RSS is then the command's own, not a copy of ours.
pub fn use_stopwatch(path: std::path::PathBuf) {
    let _ = STOPWATCH.set(path);
}

pub fn stopwatch() -> Option<&'static Path> {
    STOPWATCH.get().map(|p| p.as_path())
}

/// `cmd` wrapped in the stopwatch, reporting on the pipe's write end as fd 3.
fn wrapped(cmd: &Command, sw: &Path) -> Command {
    let mut c = Command::new(sw);
    c.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}

/// Spawn `cmd` (stdin from /dev/null, output to `spawn.output` or /dev/null),
/// wait for it with `wait4` and time it. Every command is spawned the same way
/// ([`vfork_exec`], with `PR_SET_PDEATHSIG`; through the stopwatch when there
/// is one and the start is timed), so the contenders pay the same.
pub fn run(cmd: &mut Command, spawn: &Spawn) -> io::Result<Outcome> {
    let Some(sw) = stopwatch().filter(|_| spawn.timed) else {
        return run_direct(cmd, spawn, None);
    };
    let mut fds = [0i32; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let (rd, wr) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut w = wrapped(cmd, sw);
    let o = run_direct(&mut w, spawn, Some(wr))?;
    let mut report = String::new();
    let _ = (&rd).take(256).read_to_string(&mut report);
    let f: Vec<i128> = report
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    match f[..] {
        [status, ns, rss] if !o.timed_out => Ok(Outcome {
            status: status as i32,
            elapsed: Duration::from_nanos(ns.max(0) as u64),
            maxrss_kib: rss.max(0) as u64,
            timed_out: false,
        }),
        _ => Ok(o),
    }
}

fn run_direct(cmd: &mut Command, spawn: &Spawn, report: Option<OwnedFd>) -> io::Result<Outcome> {
    static NULL: std::sync::OnceLock<File> = std::sync::OnceLock::new();
    let null = match NULL.get() {
        Some(f) => f,
        None => {
            let f = File::open("/dev/null")?;
            NULL.get_or_init(|| f)
        }
    };
    let (out, err) = match spawn.output {
        Some(o) => (o.out.as_raw_fd(), o.err.as_raw_fd()),
        None => (null.as_raw_fd(), null.as_raw_fd()),
    };
    let fds = [
        null.as_raw_fd(),
        out,
        err,
        report.as_ref().map_or(-1, |f| f.as_raw_fd()),
    ];
    let t0 = Instant::now();
    let pid = vfork_exec(cmd, fds, spawn.mount_ns)?;
    drop(report);
    let mut timed_out = false;
    if let Some(t) = spawn.timeout {
        if !wait_exit(pid, Some(t))? {
            timed_out = true;
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let (status, maxrss_kib) = wait4(pid)?;
    Ok(Outcome {
        status,
        elapsed: t0.elapsed(),
        maxrss_kib,
        timed_out,
    })
}

extern "C" {
    /// The process's environment (glibc and musl both have it). The bench
    /// never changes its environment while it runs commands.
    static environ: *const *const libc::c_char;
}

/// What the child of [`vfork_exec`] needs, all made before the clone.
struct Exec {
    path: CString,
    argv: Vec<*const libc::c_char>,
    envp: *const *const libc::c_char,
    /// Sources for fds 0, 1, 2, 3 (-1: leave that fd closed).
    fds: [RawFd; 4],
    mount_ns: RawFd,
    /// The errno of the step that failed; 0 when execve succeeded.
    errno: std::sync::atomic::AtomicI32,
}

/// Start `cmd` (program, arguments, environment changes) with `fds` as its
/// fds 0-3, in mount namespace `mount_ns` if given, and return its pid.
///
/// Spawned as Go's os/exec spawns (containerd, podman and kubelet start
/// runtimes so): `clone(CLONE_VM | CLONE_VFORK)` on a stack of its own, the
/// calling thread waiting until the child has exec'd. A fork of this
/// multithreaded bench would copy its page tables and turn every thread's
/// next write into a copy-on-write fault, on the CPUs the contenders run on
/// (~0.5 ms of CPU per start at concurrency 4 here). Between clone and
/// execve the child makes system calls only; every string and pointer it
/// uses is made before the clone.
pub(super) fn vfork_exec(
    cmd: &Command,
    fds: [RawFd; 4],
    mount_ns: Option<RawFd>,
) -> io::Result<i32> {
    use std::ffi::{CString, OsStr};
    use std::os::unix::ffi::OsStrExt;
    let cstr = |s: &OsStr| {
        CString::new(s.as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in a command"))
    };
    if cmd.get_current_dir().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a working directory for a bench command",
        ));
    }
    let prog = cmd.get_program();
    // A path as it is (execve says if it is wrong); a bare name from PATH.
    let path = if prog.as_bytes().contains(&b'/') {
        std::path::PathBuf::from(prog)
    } else {
        which(&prog.to_string_lossy()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: not found", prog.to_string_lossy()),
            )
        })?
    };
    let args = std::iter::once(prog)
        .chain(cmd.get_args())
        .map(cstr)
        .collect::<io::Result<Vec<_>>>()?;
    // Our environment as it is, or with the command's changes.
    let env = if cmd.get_envs().len() == 0 {
        None
    } else {
        let mut env: std::collections::BTreeMap<_, _> = std::env::vars_os().collect();
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => env.insert(k.to_os_string(), v.to_os_string()),
                None => env.remove(k),
            };
        }
        let env = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone();
                kv.push("=");
                kv.push(v);
                cstr(&kv)
            })
            .collect::<io::Result<Vec<_>>>()?;
        Some(env)
    };
    let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    // A source among the targets (0-3) moves above them first (a
    // close-on-exec copy), so no dup2 closes a source a later one needs.
    let mut src = fds;
    let mut moved = Vec::new();
    for s in src.iter_mut().filter(|s| (0..4).contains(*s)) {
        let h = unsafe { libc::fcntl(*s, libc::F_DUPFD_CLOEXEC, 4) };
        if h < 0 {
            return Err(io::Error::last_os_error());
        }
        moved.push(unsafe { OwnedFd::from_raw_fd(h) });
        *s = h;
    }
    let envp = env.as_deref().map(ptrs);
    let exec = Exec {
        path: cstr(path.as_os_str())?,
        argv: ptrs(&args),
        envp: envp.as_ref().map_or(unsafe { environ }, |e| e.as_ptr()),
        fds: src,
        mount_ns: mount_ns.unwrap_or(-1),
        errno: std::sync::atomic::AtomicI32::new(0),
    };
    let mut stack = Box::<[u8]>::new_uninit_slice(64 << 10);
    let pid = unsafe {
        // The stack grows down from its (16-byte aligned) end.
        let top = stack.as_mut_ptr().add(stack.len()) as usize & !15;
        libc::clone(
            vfork_child,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &exec as *const Exec as *mut libc::c_void,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    // CLONE_VFORK: the child has exec'd or exited by now.
    let errno = exec.errno.load(std::sync::atomic::Ordering::Acquire);
    if errno != 0 {
        let _ = wait4(pid);
        return Err(io::Error::from_raw_os_error(errno));
    }
    Ok(pid)
}

/// The child of [`vfork_exec`]: it shares our memory until execve.
extern "C" fn vfork_child(arg: *mut libc::c_void) -> libc::c_int {
    let e = unsafe { &*(arg as *const Exec) };
    let fail = || {
        let errno = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL);
        e.errno
            .store(errno.max(1), std::sync::atomic::Ordering::Release);
        unsafe { libc::_exit(127) }
    };
    unsafe {
        // Signals as a new process has them: none blocked, SIGPIPE (which
        // Rust ignores) back to its default.
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if e.mount_ns >= 0 && libc::setns(e.mount_ns, libc::CLONE_NEWNS) < 0 {
            fail();
        }
        for (target, &src) in e.fds.iter().enumerate() {
            if src >= 0 && libc::dup2(src, target as RawFd) < 0 {
                fail();
            }
        }
        libc::execve(e.path.as_ptr(), e.argv.as_ptr(), e.envp);
    }
    fail();
    127
}

/// `wait4(pid)`: (status as a shell shows it, ru_maxrss in KiB).
pub fn wait4(pid: i32) -> io::Result<(i32, u64)> {
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    };
    Ok((code, ru.ru_maxrss.max(0) as u64))
}

/// A pidfd for any process (not only our children).
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Wait until process `pid` (child or not) has exited; `false` on timeout.
/// A pid that no longer exists counts as exited.
pub fn wait_exit(pid: i32, timeout: Option<Duration>) -> io::Result<bool> {
    let fd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(true),
        Err(e) => return Err(e),
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let ms = match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32,
            None => -1,
        };
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r > 0 {
            return Ok(true);
        }
        if r == 0 {
            return Ok(false);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Find `name` (a path, or a file name looked up in PATH and a few usual
/// places such as ~/.cargo/bin).
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let exe = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = Path::new(name);
        return exe(p).then(|| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
    }
    let mut dirs: Vec<std::path::PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        dirs.push(d.into());
    }
    if let Some(h) = std::env::var_os("HOME") {
        dirs.push(Path::new(&h).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| exe(p))
}

/// First line of `bin --version` (or `bin version`), for the report.
pub fn version(bin: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    s.lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

/// Run a helper command to completion (not timed); Err with its stderr.
pub fn helper(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let line = last_line(&String::from_utf8_lossy(&out.stderr));
        Err(format!(
            "{:?} failed ({}): {line}",
            cmd.get_program(),
            out.status
        ))
    }
}
