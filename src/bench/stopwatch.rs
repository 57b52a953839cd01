//! mica-stopwatch: not a module of the crate. `mica bench` compiles this file
//! at bench time (a small static binary, like `init.rs`) and starts every
//! timed command through it:
//!
//! ```text
//! mica-stopwatch CMD ARGS...   ->   fd 3: "<status> <nanoseconds> <ru_maxrss KiB>\n"
//! ```
//!
//! Why: `wait4`'s `ru_maxrss` also counts the pages the child had between
//! `fork` and `exec` (a copy of its parent's), and `mica bench` itself is
//! bigger than the smallest contenders. Forked from this tiny process, the
//! command's peak RSS is its own; the time runs from just before `fork` to
//! the return of `wait4`, so the stopwatch's own start-up is not in it.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::FromRawFd;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

#[repr(C)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    maxrss: i64,
    rest: [i64; 13],
}

extern "C" {
    fn fork() -> i32;
    fn execvp(file: *const i8, argv: *const *const i8) -> i32;
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
    fn clock_gettime(clk: i32, ts: *mut Timespec) -> i32;
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
    fn close(fd: i32) -> i32;
    fn _exit(code: i32) -> !;
}

const CLOCK_MONOTONIC: i32 = 1;
const PR_SET_PDEATHSIG: i32 = 1;
const SIGKILL: u64 = 9;
const REPORT_FD: i32 = 3;

fn now_ns() -> i128 {
    let mut t = Timespec { sec: 0, nsec: 0 };
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut t) };
    t.sec as i128 * 1_000_000_000 + t.nsec as i128
}

fn main() {
    let args: Vec<CString> = std::env::args()
        .skip(1)
        .map(|a| CString::new(a).unwrap_or_default())
        .collect();
    if args.is_empty() {
        eprintln!("usage: mica-stopwatch CMD [ARGS...]  (reports on fd 3)");
        std::process::exit(2);
    }
    let mut argv: Vec<*const i8> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let t0 = now_ns();
    let pid = unsafe { fork() };
    if pid == 0 {
        unsafe {
            prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
            close(REPORT_FD);
            execvp(argv[0], argv.as_ptr());
            _exit(127);
        }
    }
    if pid < 0 {
        eprintln!("mica-stopwatch: fork failed");
        std::process::exit(125);
    }
    let mut status = 0i32;
    let mut ru: Rusage = unsafe { std::mem::zeroed() };
    while unsafe { wait4(pid, &mut status, 0, &mut ru) } != pid {}
    let elapsed = now_ns() - t0;
    let code = if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        128 + (status & 0x7f)
    };
    let mut report = unsafe { std::fs::File::from_raw_fd(REPORT_FD) };
    let _ = writeln!(report, "{code} {elapsed} {}", ru.maxrss);
    std::process::exit(code);
}
