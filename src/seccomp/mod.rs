//! OCI seccomp profile -> seccomp BPF program.
//!
//! [`compile`] turns a `linux.seccomp` profile into a classic-BPF program for
//! the host architecture; [`Program::install`] loads it with `seccomp(2)` in
//! the container's init right before `execve` (async-signal-safe).
//!
//! # Semantics (runc + libseccomp)
//!
//! * Actions: `SCMP_ACT_ALLOW`, `SCMP_ACT_ERRNO` (`errnoRet`, default
//!   `EPERM`), `SCMP_ACT_KILL` (= kill thread), `SCMP_ACT_KILL_THREAD`,
//!   `SCMP_ACT_KILL_PROCESS`, `SCMP_ACT_TRAP`, `SCMP_ACT_TRACE` (`errnoRet` is
//!   the value passed to the tracer, default `EPERM` like runc),
//!   `SCMP_ACT_LOG`. `SCMP_ACT_NOTIFY` and `listenerPath` are rejected:
//!   there is no seccomp agent support.
//! * Names are resolved with the host table (see `syscalls.rs`); a name the
//!   table does not know is skipped, as runc does (the names are available
//!   from [`Program::skipped_syscalls`] for logging).
//! * A rule whose action equals the default action is skipped (runc does
//!   this because libseccomp refuses such rules).
//! * The conditions of one entry are ANDed; several entries for the same
//!   syscall are ORed. As in runc, an entry with two or more conditions on
//!   the *same* argument index is split into one rule per condition (ORed).
//! * Comparisons are on the full 64-bit argument (libseccomp on 64-bit
//!   arches). `SCMP_CMP_MASKED_EQ` matches when `(arg & value) == valueTwo`.
//!
//! # Precedence when a syscall appears in several entries
//!
//! libseccomp decides per syscall, and we follow it where its behaviour is
//! well defined:
//!
//! 1. An unconditional entry (no `args`) makes the syscall unconditional:
//!    conditional entries for it, earlier or later, are discarded, and the
//!    *first* unconditional entry wins (libseccomp silently keeps the first).
//! 2. Two conditional entries with the same set of conditions but different
//!    actions are an error (libseccomp fails with `EEXIST`, and so does runc).
//!    Exact duplicates are merged.
//! 3. Otherwise the conditional rules are tried most restrictive action
//!    first, in the kernel's own precedence order (`KILL_PROCESS`,
//!    `KILL_THREAD`, `TRAP`, `ERRNO`, `TRACE`, `LOG`, `ALLOW`); rules with
//!    the same kind of action keep the profile order. The first rule whose
//!    conditions all hold gives the action; if none holds, the default
//!    action. (libseccomp's answer for overlapping conditions depends on the
//!    shape of its internal decision tree; ours is deterministic and never
//!    lets an overlapping allow rule open a hole in a deny rule.)
//!
//! # Architectures
//!
//! The program first checks `seccomp_data.arch`. Only the native ABI gets the
//! rules. Numbers are not translated to other ABIs, so syscalls of another
//! ABI listed in `architectures` (e.g. `SCMP_ARCH_X86` or `SCMP_ARCH_X32` on
//! x86_64) get the default action, *if* that action denies (`ERRNO`, `KILL*`,
//! `TRAP`); with a permissive default (`ALLOW`, `LOG`, `TRACE`) they are
//! killed, because letting them through would let a 32-bit process bypass a
//! deny list. ABIs not listed are killed (`SECCOMP_RET_KILL_PROCESS`). On
//! x86_64, x32 syscalls (`nr >= 0x40000000`, same `AUDIT_ARCH_X86_64`) never
//! match the x86_64 rules: they are treated as the x32 ABI.
//!
//! # Program shape
//!
//! arch check -> (x86_64: x32 check) -> binary search on the syscall number
//! (`jge` nodes) over *runs*: consecutive numbers that end the same way (one
//! unconditional action, or the default for numbers the profile does not
//! name) are one run, and a syscall with conditional rules is a run of its
//! own. Each run jumps straight to a `ret` shared by every run with that
//! action, or to its rule chain. docker's default profile is ~110
//! instructions on x86_64 (the kernel limit is 4096): less for the kernel to
//! check and JIT at every start, and ~7 jumps per syscall.

mod bpf;
mod syscalls;

use std::collections::BTreeMap;
use std::path::PathBuf;

use nix::errno::Errno;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use seccompiler::{sock_filter, BpfProgram};

use bpf::{Asm, Cmp, Target};

pub use syscalls::resolve as syscall_number;

/// Kernel limit on the number of instructions of one filter (BPF_MAXINSNS).
pub const MAX_INSTRUCTIONS: usize = 4096;

/// `X32_SYSCALL_BIT`: x32 syscalls are x86_64 numbers with this bit set.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets in `struct seccomp_data` { int nr; u32 arch; u64 ip; u64 args[6]; }.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// Seccomp arguments per syscall.
const MAX_ARGS: usize = 6;

/// Errors of [`compile`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("seccomp: no syscall table for host architecture {0}")]
    UnsupportedArch(&'static str),

    #[error(
        "seccomp: SCMP_ACT_NOTIFY is not supported (no seccomp agent support), used {}",
        match .syscall { Some(s) => format!("for syscall {s:?}"), None => "as defaultAction".to_string() }
    )]
    NotifyUnsupported { syscall: Option<String> },

    #[error("seccomp: listenerPath {0:?} is not supported (no seccomp agent support)")]
    ListenerUnsupported(PathBuf),

    #[error("seccomp: empty syscall name in a rule with action {action}")]
    EmptySyscallName { action: String },

    #[error("seccomp: syscall {syscall:?}: argument index {index} is out of range (0..=5)")]
    InvalidArgIndex { syscall: String, index: usize },

    #[error(
        "seccomp: {} {action}: errnoRet {value} does not fit in 16 bits",
        match .syscall { Some(s) => format!("syscall {s:?}"), None => "defaultAction".to_string() }
    )]
    InvalidErrnoRet {
        syscall: Option<String>,
        action: &'static str,
        value: u32,
    },

    #[error(
        "seccomp: syscall {syscall:?} has two rules with the same arguments \
         but different actions ({first} and {second})"
    )]
    ConflictingRules {
        syscall: String,
        first: String,
        second: String,
    },

    #[error("seccomp: filter has {len} BPF instructions, the kernel limit is {MAX_INSTRUCTIONS}")]
    TooLarge { len: usize },
}

/// A compiled filter, ready to be installed.
#[derive(Clone, Debug)]
pub struct Program {
    filter: BpfProgram,
    /// `SECCOMP_FILTER_FLAG_*` passed to seccomp(2).
    flags: libc::c_ulong,
    skipped: Vec<String>,
}

/// Compile an OCI profile (oci_spec::runtime::LinuxSeccomp) for the host architecture.
pub fn compile(profile: &LinuxSeccomp) -> Result<Program, Error> {
    if !syscalls::SUPPORTED {
        return Err(Error::UnsupportedArch(std::env::consts::ARCH));
    }
    if let Some(path) = profile.listener_path() {
        return Err(Error::ListenerUnsupported(path.clone()));
    }
    let default = action_value(profile.default_action(), profile.default_errno_ret(), None)?;
    let flags = filter_flags(profile.flags().as_deref().unwrap_or_default());
    let arches = Arches::new(
        profile.architectures().as_deref().unwrap_or_default(),
        default,
    );

    let entries = profile.syscalls().as_deref().unwrap_or_default();
    // runc refuses NOTIFY anywhere before looking at anything else.
    if let Some(e) = entries
        .iter()
        .find(|e| e.action() == LinuxSeccompAction::ScmpActNotify)
    {
        return Err(Error::NotifyUnsupported {
            syscall: Some(e.names().join(",")),
        });
    }

    // Syscall number -> index of its rules in `rules_of` (small map values
    // keep the map's insertions cheap).
    let mut table: BTreeMap<u32, usize> = BTreeMap::new();
    let mut rules_of: Vec<SyscallRules> = Vec::new();
    let mut skipped = Vec::new();
    for entry in entries {
        let first = entry.names().first().map(String::as_str);
        let action = action_value(entry.action(), entry.errno_ret(), first)?;
        if entry.names().iter().any(String::is_empty) {
            return Err(Error::EmptySyscallName {
                action: describe(action),
            });
        }
        if action == default {
            continue; // redundant, as in runc
        }
        let args = entry.args().as_deref().unwrap_or_default();
        for name in entry.names() {
            let Some(nr) = syscalls::resolve(name) else {
                if !skipped.contains(name) {
                    skipped.push(name.clone());
                }
                continue;
            };
            let i = *table.entry(nr).or_insert_with(|| {
                rules_of.push(SyscallRules {
                    name: name.clone(),
                    unconditional: None,
                    conditional: Vec::new(),
                });
                rules_of.len() - 1
            });
            let rules = &mut rules_of[i];
            if args.is_empty() {
                rules.add_unconditional(action);
            } else {
                for conds in condition_sets(name, args)? {
                    rules.add_conditional(Rule { action, conds })?;
                }
            }
        }
    }

    let dispatch: Vec<(u32, Vec<Rule>)> = table
        .into_iter()
        .map(|(nr, i)| (nr, std::mem::take(&mut rules_of[i]).into_ordered()))
        .collect();
    let filter = generate(&dispatch, default, &arches);
    if filter.len() > MAX_INSTRUCTIONS {
        return Err(Error::TooLarge { len: filter.len() });
    }
    Ok(Program {
        filter,
        flags,
        skipped,
    })
}

impl Program {
    /// Install the filter on the calling thread.
    ///
    /// Async-signal-safe (no allocation, no locks): it is meant to be called
    /// in a forked child right before execve. It is a single
    /// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)`, falling back to
    /// `prctl(PR_SET_SECCOMP)` when seccomp(2) is ENOSYS and no flags are
    /// requested. The caller must have set no_new_privs or hold
    /// CAP_SYS_ADMIN. Returns the errno on failure; a TSYNC failure (another
    /// thread could not be synchronised; the kernel returns its tid) is
    /// reported as `ESRCH`.
    pub fn install(&self) -> Result<(), Errno> {
        let prog = libc::sock_fprog {
            // `compile` guarantees len <= 4096.
            len: self.filter.len() as libc::c_ushort,
            // seccompiler's sock_filter is #[repr(C)] with the kernel layout.
            filter: self.filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points to a valid program that outlives the call;
        // the kernel copies it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        if rc > 0 {
            return Err(Errno::ESRCH);
        }
        let err = Errno::last();
        if err != Errno::ENOSYS || self.flags != 0 {
            return Err(err);
        }
        // SAFETY: as above.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const libc::sock_fprog,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(Errno::last())
        }
    }

    /// The BPF instructions.
    pub fn instructions(&self) -> &[sock_filter] {
        &self.filter
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits passed to seccomp(2).
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }

    /// Syscall names of the profile that the host table does not know and
    /// that were therefore ignored (each name once, in profile order).
    pub fn skipped_syscalls(&self) -> &[String] {
        &self.skipped
    }
}

// ---------------------------------------------------------------------------
// Profile -> rules

/// One argument comparison on the full 64-bit value of `args[index]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ArgCond {
    index: u8,
    op: CmpOp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum CmpOp {
    Ne(u64),
    Lt(u64),
    Le(u64),
    Eq(u64),
    Ge(u64),
    Gt(u64),
    /// `(arg & mask) == value`
    MaskedEq {
        mask: u64,
        value: u64,
    },
}

fn cmp_op(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> CmpOp {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => CmpOp::Ne(value),
        LinuxSeccompOperator::ScmpCmpLt => CmpOp::Lt(value),
        LinuxSeccompOperator::ScmpCmpLe => CmpOp::Le(value),
        LinuxSeccompOperator::ScmpCmpEq => CmpOp::Eq(value),
        LinuxSeccompOperator::ScmpCmpGe => CmpOp::Ge(value),
        LinuxSeccompOperator::ScmpCmpGt => CmpOp::Gt(value),
        LinuxSeccompOperator::ScmpCmpMaskedEq => CmpOp::MaskedEq {
            mask: value,
            value: value_two.unwrap_or(0),
        },
    }
}

/// The rules (condition lists) one profile entry adds for `name`: normally
/// one rule with all conditions; one rule per condition when two conditions
/// test the same argument (runc's compatibility behaviour).
fn condition_sets(
    name: &str,
    args: &[oci_spec::runtime::LinuxSeccompArg],
) -> Result<Vec<Vec<ArgCond>>, Error> {
    let mut conds = Vec::with_capacity(args.len());
    let mut seen = [0usize; MAX_ARGS];
    for a in args {
        if a.index() >= MAX_ARGS {
            return Err(Error::InvalidArgIndex {
                syscall: name.to_string(),
                index: a.index(),
            });
        }
        seen[a.index()] += 1;
        conds.push(ArgCond {
            index: a.index() as u8,
            op: cmp_op(a.op(), a.value(), a.value_two()),
        });
    }
    if seen.iter().any(|&n| n > 1) {
        Ok(conds.into_iter().map(|c| vec![c]).collect())
    } else {
        Ok(vec![conds])
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    /// SECCOMP_RET_* value.
    action: u32,
    /// ANDed; empty = unconditional.
    conds: Vec<ArgCond>,
}

#[derive(Default)]
struct SyscallRules {
    name: String,
    unconditional: Option<u32>,
    conditional: Vec<Rule>,
}

impl SyscallRules {
    fn add_unconditional(&mut self, action: u32) {
        if self.unconditional.is_none() {
            self.unconditional = Some(action);
            self.conditional.clear();
        }
    }

    fn add_conditional(&mut self, rule: Rule) -> Result<(), Error> {
        if self.unconditional.is_some() {
            return Ok(()); // an unconditional rule covers it
        }
        let key = sorted(&rule.conds);
        if let Some(old) = self.conditional.iter().find(|r| sorted(&r.conds) == key) {
            if old.action == rule.action {
                return Ok(());
            }
            return Err(Error::ConflictingRules {
                syscall: self.name.clone(),
                first: describe(old.action),
                second: describe(rule.action),
            });
        }
        self.conditional.push(rule);
        Ok(())
    }

    /// The rules in evaluation order (see the module docs).
    fn into_ordered(self) -> Vec<Rule> {
        if let Some(action) = self.unconditional {
            return vec![Rule {
                action,
                conds: Vec::new(),
            }];
        }
        let mut rules = self.conditional;
        rules.sort_by_key(|r| severity(r.action)); // stable
        rules
    }
}

fn sorted(conds: &[ArgCond]) -> Vec<ArgCond> {
    let mut v = conds.to_vec();
    v.sort();
    v.dedup();
    v
}

/// SECCOMP_RET_* value of an action; `syscall` only labels errors.
fn action_value(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    syscall: Option<&str>,
) -> Result<u32, Error> {
    let data = |name: &'static str| -> Result<u32, Error> {
        let value = errno_ret.unwrap_or(libc::EPERM as u32);
        if value > libc::SECCOMP_RET_DATA {
            return Err(Error::InvalidErrnoRet {
                syscall: syscall.map(str::to_string),
                action: name,
                value,
            });
        }
        Ok(value)
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => libc::SECCOMP_RET_ALLOW,
        LinuxSeccompAction::ScmpActErrno => libc::SECCOMP_RET_ERRNO | data("SCMP_ACT_ERRNO")?,
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            libc::SECCOMP_RET_KILL_THREAD
        }
        LinuxSeccompAction::ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => libc::SECCOMP_RET_TRAP,
        LinuxSeccompAction::ScmpActTrace => libc::SECCOMP_RET_TRACE | data("SCMP_ACT_TRACE")?,
        LinuxSeccompAction::ScmpActLog => libc::SECCOMP_RET_LOG,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::NotifyUnsupported {
                syscall: syscall.map(str::to_string),
            })
        }
    })
}

/// Kernel precedence of return values: lower = more restrictive.
fn severity(ret: u32) -> u8 {
    match ret & libc::SECCOMP_RET_ACTION_FULL {
        libc::SECCOMP_RET_KILL_PROCESS => 0,
        libc::SECCOMP_RET_KILL_THREAD => 1,
        libc::SECCOMP_RET_TRAP => 2,
        libc::SECCOMP_RET_ERRNO => 3,
        libc::SECCOMP_RET_USER_NOTIF => 4,
        libc::SECCOMP_RET_TRACE => 5,
        libc::SECCOMP_RET_LOG => 6,
        _ => 7, // ALLOW
    }
}

/// Whether a default action lets syscalls run (possibly after logging or a
/// tracer's decision).
fn permissive(ret: u32) -> bool {
    matches!(
        ret & libc::SECCOMP_RET_ACTION_FULL,
        libc::SECCOMP_RET_ALLOW | libc::SECCOMP_RET_LOG | libc::SECCOMP_RET_TRACE
    )
}

/// Human-readable action, for error messages.
fn describe(ret: u32) -> String {
    let data = ret & libc::SECCOMP_RET_DATA;
    match ret & libc::SECCOMP_RET_ACTION_FULL {
        libc::SECCOMP_RET_KILL_PROCESS => "SCMP_ACT_KILL_PROCESS".into(),
        libc::SECCOMP_RET_KILL_THREAD => "SCMP_ACT_KILL_THREAD".into(),
        libc::SECCOMP_RET_TRAP => "SCMP_ACT_TRAP".into(),
        libc::SECCOMP_RET_ERRNO => format!("SCMP_ACT_ERRNO({data})"),
        libc::SECCOMP_RET_TRACE => format!("SCMP_ACT_TRACE({data})"),
        libc::SECCOMP_RET_LOG => "SCMP_ACT_LOG".into(),
        libc::SECCOMP_RET_ALLOW => "SCMP_ACT_ALLOW".into(),
        other => format!("{other:#x}"),
    }
}

fn filter_flags(flags: &[LinuxSeccompFilterFlag]) -> libc::c_ulong {
    flags.iter().fold(0, |acc, f| {
        acc | match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // Only meaningful with a notify listener (NEW_LISTENER), which we
            // never create; libseccomp drops it in that case too, and the
            // kernel would reject it (EINVAL) without NEW_LISTENER.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        }
    })
}

/// What to do with syscalls that are not of the native ABI.
struct Arches {
    /// AUDIT_ARCH values (other than the native one) listed in the profile.
    secondary: Vec<u32>,
    /// Action for their syscalls.
    secondary_action: u32,
    /// Whether the x32 ABI is listed (x86_64 only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    x32: bool,
}

impl Arches {
    fn new(listed: &[Arch], default: u32) -> Self {
        let mut secondary = Vec::new();
        let mut x32 = false;
        for &arch in listed {
            match arch {
                Arch::ScmpArchNative => {}
                // libseccomp's SCMP_ARCH_X32 is not an AUDIT_ARCH value: x32
                // shares AUDIT_ARCH_X86_64 and is told apart by the syscall
                // number.
                Arch::ScmpArchX32 => x32 = true,
                // Every other SCMP_ARCH_* value is the AUDIT_ARCH_* value.
                other => {
                    let audit = other as u32;
                    if audit != syscalls::NATIVE_AUDIT_ARCH && !secondary.contains(&audit) {
                        secondary.push(audit);
                    }
                }
            }
        }
        let secondary_action = if permissive(default) {
            libc::SECCOMP_RET_KILL_PROCESS
        } else {
            default
        };
        Arches {
            secondary,
            secondary_action,
            x32,
        }
    }
}

// ---------------------------------------------------------------------------
// Code generation

fn generate(dispatch: &[(u32, Vec<Rule>)], default: u32, arches: &Arches) -> BpfProgram {
    let mut asm = Asm::new();

    // Architecture.
    let native = asm.label();
    asm.load(OFF_ARCH);
    asm.jump(
        Cmp::Eq,
        syscalls::NATIVE_AUDIT_ARCH,
        Target::To(native),
        Target::Next,
    );
    if !arches.secondary.is_empty() {
        let secondary = asm.label();
        for &audit in &arches.secondary {
            asm.jump(Cmp::Eq, audit, Target::To(secondary), Target::Next);
        }
        asm.ret(libc::SECCOMP_RET_KILL_PROCESS);
        asm.bind(secondary);
        asm.ret(arches.secondary_action);
    } else {
        asm.ret(libc::SECCOMP_RET_KILL_PROCESS);
    }
    asm.bind(native);
    asm.load(OFF_NR);

    // x32 shares AUDIT_ARCH_X86_64; its numbers have X32_SYSCALL_BIT set.
    // Syscall -1 is not x32: a tracer sets it to skip a syscall, and the
    // filter runs again after the tracer (libseccomp lets it through to the
    // rules too, where it gets the default action).
    #[cfg(target_arch = "x86_64")]
    {
        let x86_64 = asm.label();
        asm.jump(Cmp::Ge, X32_SYSCALL_BIT, Target::Next, Target::To(x86_64));
        asm.jump(Cmp::Eq, u32::MAX, Target::To(x86_64), Target::Next);
        asm.ret(if arches.x32 {
            arches.secondary_action
        } else {
            libc::SECCOMP_RET_KILL_PROCESS
        });
        asm.bind(x86_64);
    }

    search(&mut asm, dispatch, default);
    asm.assemble()
}

/// What the filter does for a run of consecutive syscall numbers.
#[derive(Clone, Copy)]
enum Outcome<'a> {
    /// One action, whatever the arguments.
    Ret(u32),
    /// One syscall's conditional rules, tried in order.
    Rules(&'a [Rule]),
}

/// A run's first syscall number and its outcome.
type Run<'a> = (u32, Outcome<'a>);

/// The syscall number space cut into runs that share an outcome: each
/// `(first number, outcome)` holds up to the next run's first number.
/// Neighbours with the same unconditional action are one run (a default
/// allow list is a few dozen runs, not hundreds of syscalls).
fn runs(dispatch: &[(u32, Vec<Rule>)], default: u32) -> Vec<Run<'_>> {
    fn push<'a>(runs: &mut Vec<Run<'a>>, start: u32, o: Outcome<'a>) {
        match (runs.last(), o) {
            (Some((_, Outcome::Ret(last))), Outcome::Ret(a)) if *last == a => {}
            _ => runs.push((start, o)),
        }
    }
    let mut runs = Vec::new();
    let mut next = Some(0u32);
    for (nr, rules) in dispatch {
        if let Some(gap) = next.filter(|n| nr > n) {
            push(&mut runs, gap, Outcome::Ret(default));
        }
        let o = match rules.as_slice() {
            [Rule { action, conds }] if conds.is_empty() => Outcome::Ret(*action),
            _ => Outcome::Rules(rules),
        };
        push(&mut runs, *nr, o);
        next = nr.checked_add(1);
    }
    if let Some(n) = next {
        push(&mut runs, n, Outcome::Ret(default));
    }
    runs
}

/// Where the search ends: a `ret` shared by every run with that action, or
/// one syscall's rule chain.
#[derive(Default)]
struct Exits<'a> {
    returns: Vec<(u32, bpf::Label)>,
    bodies: Vec<(bpf::Label, &'a [Rule])>,
}

impl<'a> Exits<'a> {
    fn label(&mut self, asm: &mut Asm, o: Outcome<'a>) -> bpf::Label {
        match o {
            Outcome::Ret(a) => match self.returns.iter().find(|(x, _)| *x == a) {
                Some(&(_, l)) => l,
                None => {
                    let l = asm.label();
                    self.returns.push((a, l));
                    l
                }
            },
            Outcome::Rules(rules) => {
                let l = asm.label();
                self.bodies.push((l, rules));
                l
            }
        }
    }

    /// The jump target for a half of the runs: its exit when it is one run.
    fn of(&mut self, asm: &mut Asm, half: &[Run<'a>]) -> Option<Target> {
        match half {
            [(_, o)] => Some(Target::To(self.label(asm, *o))),
            _ => None,
        }
    }
}

/// Binary search on the syscall number (in A) over its runs: `jge` nodes
/// down to the runs' exits.
fn search(asm: &mut Asm, dispatch: &[(u32, Vec<Rule>)], default: u32) {
    let runs = runs(dispatch, default);
    if let [(_, Outcome::Ret(a))] = runs[..] {
        return asm.ret(a);
    }
    let mut exits = Exits::default();
    // Parts of two runs or more still to emit, with the label leading to
    // each; the lower half comes right after its node's jump.
    let mut pending: Vec<(Option<bpf::Label>, &[Run])> = vec![(None, &runs)];
    while let Some((at, part)) = pending.pop() {
        if let Some(l) = at {
            asm.bind(l);
        }
        let (lo, hi) = part.split_at(part.len() / 2);
        let jt = exits.of(asm, hi).unwrap_or_else(|| {
            let l = asm.label();
            pending.push((Some(l), hi));
            Target::To(l)
        });
        let jf = exits.of(asm, lo).unwrap_or_else(|| {
            pending.push((None, lo));
            Target::Next
        });
        asm.jump(Cmp::Ge, hi[0].0, jt, jf);
    }
    for (action, l) in exits.returns {
        asm.bind(l);
        asm.ret(action);
    }
    for (l, rules) in exits.bodies {
        asm.bind(l);
        for rule in rules {
            let fail = asm.label();
            for cond in &rule.conds {
                condition(asm, cond, fail);
            }
            asm.ret(rule.action);
            asm.bind(fail);
        }
        asm.ret(default);
    }
}

/// Falls through when `cond` holds, jumps to `fail` otherwise. Clobbers A.
fn condition(asm: &mut Asm, cond: &ArgCond, fail: bpf::Label) {
    let lo_off = OFF_ARGS + 8 * u32::from(cond.index);
    // Little-endian: the high word follows the low one.
    #[cfg(target_endian = "little")]
    let hi_off = lo_off + 4;
    #[cfg(target_endian = "big")]
    let (lo_off, hi_off) = (lo_off + 4, lo_off);
    let hi = |v: u64| (v >> 32) as u32;
    let lo = |v: u64| v as u32;
    let fail = Target::To(fail);
    match cond.op {
        CmpOp::Eq(v) => {
            asm.load(hi_off);
            asm.jump(Cmp::Eq, hi(v), Target::Next, fail);
            asm.load(lo_off);
            asm.jump(Cmp::Eq, lo(v), Target::Next, fail);
        }
        CmpOp::Ne(v) => {
            let pass = asm.label();
            asm.load(hi_off);
            asm.jump(Cmp::Eq, hi(v), Target::Next, Target::To(pass));
            asm.load(lo_off);
            asm.jump(Cmp::Eq, lo(v), fail, Target::Next);
            asm.bind(pass);
        }
        // hi > vh, or hi == vh and lo (>|>=) vl
        CmpOp::Gt(v) | CmpOp::Ge(v) => {
            let pass = asm.label();
            let low_cmp = if matches!(cond.op, CmpOp::Gt(_)) {
                Cmp::Gt
            } else {
                Cmp::Ge
            };
            asm.load(hi_off);
            asm.jump(Cmp::Gt, hi(v), Target::To(pass), Target::Next);
            asm.jump(Cmp::Eq, hi(v), Target::Next, fail);
            asm.load(lo_off);
            asm.jump(low_cmp, lo(v), Target::Next, fail);
            asm.bind(pass);
        }
        // Lt = !Ge, Le = !Gt
        CmpOp::Lt(v) | CmpOp::Le(v) => {
            let pass = asm.label();
            let low_cmp = if matches!(cond.op, CmpOp::Lt(_)) {
                Cmp::Ge
            } else {
                Cmp::Gt
            };
            asm.load(hi_off);
            asm.jump(Cmp::Gt, hi(v), fail, Target::Next);
            asm.jump(Cmp::Eq, hi(v), Target::Next, Target::To(pass));
            asm.load(lo_off);
            asm.jump(low_cmp, lo(v), fail, Target::Next);
            asm.bind(pass);
        }
        CmpOp::MaskedEq { mask, value } => {
            for (off, m, d) in [(hi_off, hi(mask), hi(value)), (lo_off, lo(mask), lo(value))] {
                asm.load(off);
                asm.and(m);
                asm.jump(Cmp::Eq, d, Target::Next, fail);
            }
        }
    }
}

#[cfg(test)]
mod tests;
