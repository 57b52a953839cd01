//! Running a command and measuring it: wall time from spawn to the return of
//! `wait4`, and the peak RSS `wait4` reports (the process and the children it
//! reaped, e.g. `runc init`).

use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
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
    pub fn new(dir: &Path, name: &str) -> io::Result<Output> {
        let open = |ext: &str| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.join(format!("{name}.{ext}")))
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
/// (fork + exec, with `PR_SET_PDEATHSIG`; through the stopwatch when there is
/// one and the start is timed), so the contenders pay the same.
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
    cmd.stdin(Stdio::null());
    match spawn.output {
        Some(o) => {
            cmd.stdout(o.out.try_clone()?);
            cmd.stderr(o.err.try_clone()?);
        }
        None => {
            cmd.stdout(Stdio::null());
            cmd.stderr(Stdio::null());
        }
    }
    let ns = spawn.mount_ns;
    let report_fd = report.as_ref().map(|f| f.as_raw_fd());
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if let Some(fd) = ns {
                if libc::setns(fd, libc::CLONE_NEWNS) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(fd) = report_fd {
                if libc::dup2(fd, 3) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let t0 = Instant::now();
    let child = cmd.spawn()?;
    drop(report);
    let pid = child.id() as i32;
    // We reap it ourselves (wait4 for the rusage); std never waits for it.
    std::mem::forget(child);
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
