//! The solo clone (see [`Plan::solo`]): clone3 with CLONE_VM | CLONE_VFORK.
//! The child runs [`child::run`] on a stack of its own in our memory, all
//! the way to its exec (or exit); we sleep until then. Nothing is copied or
//! faulted in twice (no page tables to copy, no copy-on-write, no text to
//! fault in again), and no message has to wake either side.
//!
//! What makes sharing our memory safe: we do not run while the child does
//! (mica is single-threaded when it launches: CLONE_VFORK stops only the
//! calling thread), the child only reads the plan and allocates nothing, and
//! it leaves by execve or `_exit` (no destructor, no atexit handler of ours
//! runs in it). Its errno writes land in our thread's errno, which nothing of
//! ours reads across the clone. It must not panic (the panic machinery would
//! run in our memory): its failures are reports.
//!
//! The memory is made non-dumpable while the child uses it: a kernel before
//! 5.16 that dumps core for a child killed by a signal (a seccomp KILL
//! action, a SIGQUIT before its `setsid`) kills every process sharing the
//! memory first, which would be us; and the child's change of uid or gid
//! would otherwise leave our memory non-dumpable for good (the kernel sets
//! that flag on the memory, not the task). It is restored once the child has
//! exec'd or exited; its exec gives it memory of its own.

use super::{child, plan::Plan, sync::Msg, CloneArgs, CLONE_INTO_CGROUP};
use libc::{c_int, c_void};
use nix::errno::Errno;

/// The child's stack: `child::run` needs a few 4 KiB path buffers deep;
/// only the pages it touches are ever allocated.
const STACK: usize = 1 << 20;
/// Below it, a page nothing may touch: an overflow faults (the child dies,
/// and says nothing: `spawn` reports that) instead of writing over our heap.
const GUARD: usize = 4096;

struct Start<'a> {
    plan: &'a Plan,
    sync: c_int,
    parent_sync: c_int,
    report: *mut Msg,
}

extern "C" fn entry(arg: *const c_void) -> ! {
    // SAFETY: `clone` passes a `Start` (and a report slot) that outlives
    // the child's use of it: we sleep until its exec or exit.
    let s = unsafe { &*(arg as *const Start) };
    unsafe { libc::close(s.parent_sync) };
    child::run(s.plan, s.sync, &mut [], Some(unsafe { &mut *s.report }))
}

/// Clone the child alone, into `cgroup_fd` (a cgroup2 dir) when given.
/// Returns once it has exec'd or exited, its report in `report`. Err: the
/// kernel refused (the caller clones the usual way then).
pub(super) fn clone(
    plan: &Plan,
    cgroup_fd: Option<c_int>,
    sync: c_int,
    parent_sync: c_int,
    report: &mut Msg,
) -> Result<libc::pid_t, Errno> {
    // SAFETY: a fresh private mapping, unmapped below once the child is
    // done with it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            GUARD + STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    // SAFETY: PR_GET_DUMPABLE/PR_SET_DUMPABLE take and return plain ints.
    let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    let rc = if unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) } < 0
        || unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0
    {
        -(Errno::last() as i64)
    } else {
        let mut args = CloneArgs {
            flags: plan.clone_flags | (libc::CLONE_VM | libc::CLONE_VFORK) as u64,
            exit_signal: libc::SIGCHLD as u64,
            stack: base as u64 + GUARD as u64,
            stack_size: STACK as u64,
            ..Default::default()
        };
        if let Some(fd) = cgroup_fd {
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = fd as u64;
        }
        let start = Start {
            plan,
            sync,
            parent_sync,
            report,
        };
        // SAFETY: see the module's comment; `entry` never returns.
        unsafe { clone3_on_stack(&args, entry, &start as *const Start as *const c_void) }
    };
    if dumpable >= 0 {
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, dumpable as libc::c_ulong, 0, 0, 0) };
    }
    unsafe { libc::munmap(base, GUARD + STACK) };
    if rc < 0 {
        Err(Errno::from_raw(-rc as i32))
    } else {
        Ok(rc as libc::pid_t)
    }
}

/// clone3(`args`); the child calls `entry(arg)` on the stack `args` gives
/// it (the kernel points its stack pointer at the top). Returns the child's
/// pid or -errno.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_on_stack(
    args: &CloneArgs,
    entry: extern "C" fn(*const c_void) -> !,
    arg: *const c_void,
) -> i64 {
    let rc: i64;
    // The child comes back from the syscall with rax = 0, on its own stack
    // (16-byte aligned: `call` leaves it as a function expects), and never
    // leaves this block. The parent jumps over that part.
    std::arch::asm!(
        "syscall",
        "test rax, rax",
        "jnz 2f",
        "xor ebp, ebp",
        "mov rdi, r12",
        "call r13",
        "ud2",
        "2:",
        inlateout("rax") libc::SYS_clone3 => rc,
        in("rdi") args as *const CloneArgs,
        in("rsi") std::mem::size_of::<CloneArgs>(),
        in("r12") arg,
        in("r13") entry as usize,
        lateout("rcx") _,
        lateout("r11") _,
        options(nostack),
    );
    rc
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3_on_stack(
    _args: &CloneArgs,
    _entry: extern "C" fn(*const c_void) -> !,
    _arg: *const c_void,
) -> i64 {
    -(Errno::ENOSYS as i64)
}
