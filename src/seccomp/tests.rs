use super::bpf::{ALU_AND_K, JMP_JA, JMP_JEQ_K, JMP_JGE_K, JMP_JGT_K, LD_W_ABS, RET_K};
use super::*;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use serde_json::json;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const KILL_THREAD: u32 = libc::SECCOMP_RET_KILL_THREAD;
const TRAP: u32 = libc::SECCOMP_RET_TRAP;
const LOG: u32 = libc::SECCOMP_RET_LOG;

fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | e as u32
}

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("valid LinuxSeccomp JSON")
}

fn compile_json(v: serde_json::Value) -> Program {
    compile(&profile(v)).expect("profile compiles")
}

fn nr(name: &str) -> u32 {
    syscall_number(name).unwrap_or_else(|| panic!("{name} not in table"))
}

// ---------------------------------------------------------------------------
// A classic-BPF interpreter for seccomp programs. It accepts only what the
// kernel's seccomp checker accepts of the opcodes we emit, and checks what
// the kernel checks (in-bounds forward jumps, aligned loads inside
// seccomp_data, every path ends in RET).

struct Data {
    nr: u32,
    arch: u32,
    args: [u64; 6],
}

fn word(d: &Data, off: u32) -> u32 {
    assert!(off & 3 == 0 && off < 64, "bad load offset {off}");
    match off {
        0 => d.nr,
        4 => d.arch,
        8 | 12 => 0, // instruction pointer
        _ => {
            let arg = d.args[((off - 16) / 8) as usize];
            if off & 4 == 0 {
                arg as u32
            } else {
                (arg >> 32) as u32
            }
        }
    }
}

fn run(prog: &[sock_filter], d: &Data) -> u32 {
    assert!(!prog.is_empty() && prog.len() <= MAX_INSTRUCTIONS);
    let mut a: u32 = 0;
    let mut pc = 0usize;
    loop {
        let i = prog
            .get(pc)
            .unwrap_or_else(|| panic!("pc {pc} out of program"));
        pc += 1;
        match i.code {
            LD_W_ABS => a = word(d, i.k),
            ALU_AND_K => a &= i.k,
            RET_K => return i.k,
            JMP_JA => pc += i.k as usize,
            JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K => {
                let taken = match i.code {
                    JMP_JEQ_K => a == i.k,
                    JMP_JGT_K => a > i.k,
                    _ => a >= i.k,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

fn native(name: &str, args: [u64; 6]) -> Data {
    Data {
        nr: nr(name),
        arch: syscalls::NATIVE_AUDIT_ARCH,
        args,
    }
}

fn eval(p: &Program, name: &str, args: [u64; 6]) -> u32 {
    run(p.instructions(), &native(name, args))
}

fn a0(v: u64) -> [u64; 6] {
    [v, 0, 0, 0, 0, 0]
}

// ---------------------------------------------------------------------------
// Name table

#[test]
#[cfg(target_arch = "x86_64")]
fn x86_64_numbers() {
    for (name, n) in [
        ("read", 0),
        ("write", 1),
        ("mkdir", 83),
        ("getppid", 110),
        ("personality", 135),
        ("_sysctl", 156),
        ("exit_group", 231),
        ("clone3", 435),
        ("mseal", 462),
        // not in libc: from the extra list
        ("io_pgetevents", 333),
        ("map_shadow_stack", 453),
        ("listmount", 458),
    ] {
        assert_eq!(syscall_number(name), Some(n), "{name}");
    }
    assert!(syscalls::all().count() >= 380);
}

#[test]
#[cfg(target_arch = "aarch64")]
fn aarch64_numbers() {
    for (name, n) in [
        ("read", 63),
        ("write", 64),
        ("mkdirat", 34),
        ("renameat", 38),
        ("exit_group", 94),
        ("clone3", 435),
        ("io_pgetevents", 292),
    ] {
        assert_eq!(syscall_number(name), Some(n), "{name}");
    }
    assert_eq!(syscall_number("mkdir"), None);
}

#[test]
fn table_has_unique_names_and_numbers() {
    let all: Vec<_> = syscalls::all().collect();
    let mut names: Vec<_> = all.iter().map(|e| e.0).collect();
    let mut numbers: Vec<_> = all.iter().map(|e| e.1).collect();
    names.sort_unstable();
    names.dedup();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(names.len(), all.len(), "duplicate name");
    assert_eq!(numbers.len(), all.len(), "duplicate number");
    assert!(numbers.iter().all(|&n| n < 1024));
    assert_eq!(syscall_number("no_such_syscall"), None);
}

#[test]
fn unknown_names_are_skipped() {
    let with_unknown = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "no_such_syscall", "rmdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["frobnicate"], "action": "SCMP_ACT_KILL"},
            {"names": ["no_such_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
        ]
    }));
    let without = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "rmdir"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(with_unknown.instructions(), without.instructions());
    assert_eq!(
        with_unknown.skipped_syscalls(),
        ["no_such_syscall".to_string(), "frobnicate".to_string()]
    );
    assert_eq!(eval(&with_unknown, "rmdir", [0; 6]), errno(libc::EPERM));
}

// ---------------------------------------------------------------------------
// Actions

#[test]
fn actions_map_to_seccomp_return_values() {
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["close"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["getpid"], "action": "SCMP_ACT_KILL"},
            {"names": ["getppid"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["getuid"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["getgid"], "action": "SCMP_ACT_TRAP"},
            {"names": ["geteuid"], "action": "SCMP_ACT_TRACE"},
            {"names": ["getegid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["gettid"], "action": "SCMP_ACT_LOG"}
        ]
    }));
    let cases = [
        ("read", ALLOW),
        ("write", errno(libc::EPERM)),
        ("close", errno(13)),
        ("getpid", KILL_THREAD),
        ("getppid", KILL_THREAD),
        ("getuid", KILL_PROCESS),
        ("getgid", TRAP),
        ("geteuid", libc::SECCOMP_RET_TRACE | 1),
        ("getegid", libc::SECCOMP_RET_TRACE | 7),
        ("gettid", LOG),
        ("sync", errno(38)), // default
    ];
    for (name, want) in cases {
        assert_eq!(eval(&p, name, [0; 6]), want, "{name}");
    }
}

#[test]
fn default_errno_without_errno_ret_is_eperm() {
    let p = compile_json(json!({"defaultAction": "SCMP_ACT_ERRNO"}));
    assert_eq!(eval(&p, "getpid", [0; 6]), errno(libc::EPERM));
}

#[test]
fn rules_equal_to_the_default_are_skipped() {
    // As in runc: the ERRNO(EPERM) rule equals the default, so it is dropped
    // and the later ALLOW for mkdir is what remains.
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    assert_eq!(eval(&p, "mkdir", [0; 6]), ALLOW);
    let empty = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "read"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let none = compile_json(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    assert_eq!(empty.instructions(), none.instructions());
}

#[test]
fn notify_is_rejected() {
    let err = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["openat"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .unwrap_err();
    assert!(matches!(err, Error::NotifyUnsupported { syscall: Some(ref s) } if s == "openat"));
    assert!(err.to_string().contains("SCMP_ACT_NOTIFY"), "{err}");
    assert!(err.to_string().contains("openat"), "{err}");

    let err = compile(&profile(json!({"defaultAction": "SCMP_ACT_NOTIFY"}))).unwrap_err();
    assert!(matches!(err, Error::NotifyUnsupported { syscall: None }));

    // Even for a name we don't know (runc checks NOTIFY first too).
    let err = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["no_such_syscall"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .unwrap_err();
    assert!(matches!(err, Error::NotifyUnsupported { .. }));

    let err = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock"
    })))
    .unwrap_err();
    assert!(matches!(err, Error::ListenerUnsupported(_)));
    assert!(err.to_string().contains("/run/agent.sock"));
}

#[test]
fn invalid_input_is_rejected() {
    let err = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]
    })))
    .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgIndex { index: 6, .. }),
        "{err}"
    );

    let err = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]
    })))
    .unwrap_err();
    assert!(
        matches!(err, Error::InvalidErrnoRet { value: 70000, .. }),
        "{err}"
    );

    let err = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": [""], "action": "SCMP_ACT_ERRNO"}]
    })))
    .unwrap_err();
    assert!(matches!(err, Error::EmptySyscallName { .. }), "{err}");
}

#[test]
fn flags_are_mapped() {
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    }));
    assert_eq!(p.flags(), 0b111);
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    }));
    assert_eq!(p.flags(), libc::SECCOMP_FILTER_FLAG_LOG);
    let p = compile_json(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    assert_eq!(p.flags(), 0);
    // An unknown flag never reaches us: the OCI type rejects it.
    assert!(serde_json::from_value::<LinuxSeccomp>(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]
    }))
    .is_err());
}

// ---------------------------------------------------------------------------
// Argument conditions

/// Values around the interesting boundaries of `v` (both 32-bit halves).
fn probes(v: u64) -> Vec<u64> {
    let mut out = vec![0, 1, u32::MAX as u64, 1 << 32, u64::MAX, u64::MAX - 1];
    for d in [0u64, 1, 1 << 32] {
        out.push(v.wrapping_add(d));
        out.push(v.wrapping_sub(d));
    }
    out.push(v ^ (1 << 63));
    out.push(v ^ 1);
    out
}

#[test]
fn arg_ops_compare_full_64_bit_values() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut values = vec![0, 1, 0xffff_ffff, 1 << 32, 0x1_ffff_ffff, u64::MAX, 42];
    values.extend((0..20).map(|_| rand()));
    values.extend((0..10).map(|_| rand() & 0xffff_ffff));
    values.extend((0..10).map(|_| rand() & 0xffff_ffff_0000_0000));

    type Reference = fn(u64, u64, u64) -> bool;
    let ops: [(&str, Reference); 7] = [
        ("SCMP_CMP_NE", |a, v, _| a != v),
        ("SCMP_CMP_LT", |a, v, _| a < v),
        ("SCMP_CMP_LE", |a, v, _| a <= v),
        ("SCMP_CMP_EQ", |a, v, _| a == v),
        ("SCMP_CMP_GE", |a, v, _| a >= v),
        ("SCMP_CMP_GT", |a, v, _| a > v),
        ("SCMP_CMP_MASKED_EQ", |a, m, d| a & m == d),
    ];
    for (op, reference) in ops {
        for &v in &values {
            let v2 = v & rand(); // a datum that can match under mask v
            let p = compile_json(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                              "errnoRet": 99,
                              "args": [{"index": 3, "value": v, "valueTwo": v2, "op": op}]}]
            }));
            let mut args = probes(v);
            args.extend(probes(v2));
            args.push(v2 | !v);
            for a in args {
                let want = if reference(a, v, v2) {
                    errno(99)
                } else {
                    ALLOW
                };
                let got = eval(&p, "personality", [0, 0, 0, a, 0, 0]);
                assert_eq!(got, want, "{op} value={v:#x} valueTwo={v2:#x} arg={a:#x}");
                // Other arguments are not looked at.
                let got = eval(&p, "personality", [a, a, a, 0x5555, a, a]);
                let want = if reference(0x5555, v, v2) {
                    errno(99)
                } else {
                    ALLOW
                };
                assert_eq!(got, want, "{op} on the wrong argument");
            }
        }
    }
}

#[test]
fn masked_eq_uses_value_as_mask_and_value_two_as_datum() {
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 0, "value": 0x7e02_0000u64, "valueTwo": 0,
                                "op": "SCMP_CMP_MASKED_EQ"}]}]
    }));
    // no namespace flags -> matches
    assert_eq!(eval(&p, "clone", a0(0x0001_1200)), errno(libc::EPERM));
    // CLONE_NEWUSER -> does not match
    assert_eq!(eval(&p, "clone", a0(0x1000_0000)), ALLOW);
}

#[test]
fn conditions_of_an_entry_are_anded_entries_are_ored() {
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let deny = errno(libc::EPERM);
    assert_eq!(eval(&p, "socket", [1, 2, 0, 0, 0, 0]), ALLOW);
    assert_eq!(eval(&p, "socket", [1, 3, 0, 0, 0, 0]), deny);
    assert_eq!(eval(&p, "socket", [2, 2, 0, 0, 0, 0]), deny);
    assert_eq!(eval(&p, "socket", [10, 7, 0, 0, 0, 0]), ALLOW);
    assert_eq!(eval(&p, "socket", [11, 2, 0, 0, 0, 0]), deny);
}

#[test]
fn same_argument_twice_in_an_entry_is_ored_like_runc() {
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                               {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                               {"index": 1, "value": 5, "op": "SCMP_CMP_EQ"}]}]
    }));
    let deny = errno(libc::EPERM);
    assert_eq!(eval(&p, "personality", [0, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(eval(&p, "personality", [8, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(eval(&p, "personality", [3, 5, 0, 0, 0, 0]), ALLOW);
    assert_eq!(eval(&p, "personality", [3, 4, 0, 0, 0, 0]), deny);
}

// ---------------------------------------------------------------------------
// Precedence

#[test]
fn most_restrictive_conditional_rule_wins() {
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "syscalls": [
            {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 1, "value": 100, "op": "SCMP_CMP_GE"}]},
            {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [{"index": 1, "value": 200, "op": "SCMP_CMP_EQ"}]},
            {"names": ["ioctl"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 1, "value": 300, "op": "SCMP_CMP_EQ"}]},
            {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 33,
             "args": [{"index": 1, "value": 150, "op": "SCMP_CMP_GT"}]}
        ]
    }));
    let ioctl = |cmd| eval(&p, "ioctl", [0, cmd, 0, 0, 0, 0]);
    assert_eq!(ioctl(99), errno(1)); // nothing matches: default
    assert_eq!(ioctl(120), ALLOW);
    assert_eq!(ioctl(300), KILL_PROCESS); // KILL beats ALLOW and both ERRNOs
    assert_eq!(ioctl(200), errno(22)); // ERRNO beats ALLOW; errno 22 first in profile
    assert_eq!(ioctl(160), errno(33));
}

#[test]
fn first_unconditional_rule_wins_and_discards_conditionals() {
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6},
            {"names": ["mkdir"], "action": "SCMP_ACT_TRAP",
             "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    for mode in [0, 1, 2] {
        assert_eq!(eval(&p, "mkdir", [0, mode, 0, 0, 0, 0]), errno(5));
    }
}

#[test]
fn identical_conditions_with_different_actions_conflict() {
    let err = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_KILL",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}
        ]
    })))
    .unwrap_err();
    assert!(matches!(err, Error::ConflictingRules { ref syscall, .. } if syscall == "kill"));
    assert!(err.to_string().contains("SCMP_ACT_ERRNO(1)"), "{err}");
    assert!(err.to_string().contains("SCMP_ACT_KILL_THREAD"), "{err}");

    // Same conditions, same action: merged, not an error.
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    assert_eq!(eval(&p, "kill", [1, 9, 0, 0, 0, 0]), errno(libc::EPERM));
    assert_eq!(eval(&p, "kill", [1, 15, 0, 0, 0, 0]), ALLOW);
}

// ---------------------------------------------------------------------------
// Architectures

const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;

fn foreign(arch: u32, nr: u32) -> Data {
    Data {
        nr,
        arch,
        args: [0; 6],
    }
}

#[test]
fn other_arches_never_get_native_rules() {
    let listed = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM"],
        "syscalls": [{"names": ["getpid", "read"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let unlisted = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["getpid", "read"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let getpid = nr("getpid");
    for arch in [AUDIT_ARCH_I386, AUDIT_ARCH_ARM] {
        // Listed: the default action, even for a number the native ABI allows.
        assert_eq!(run(listed.instructions(), &foreign(arch, getpid)), errno(1));
        assert_eq!(run(listed.instructions(), &foreign(arch, 20)), errno(1));
        // Not listed: killed.
        assert_eq!(
            run(unlisted.instructions(), &foreign(arch, getpid)),
            KILL_PROCESS
        );
    }
    assert_eq!(
        run(unlisted.instructions(), &foreign(0xdead_beef, 0)),
        KILL_PROCESS
    );
    assert_eq!(eval(&listed, "getpid", [0; 6]), ALLOW);

    // A permissive default would let a foreign ABI bypass deny rules: killed.
    let blocklist = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(
        run(blocklist.instructions(), &foreign(AUDIT_ARCH_I386, 39)),
        KILL_PROCESS
    );
    assert_eq!(eval(&blocklist, "getpid", [0; 6]), ALLOW);
}

#[test]
#[cfg(target_arch = "x86_64")]
fn x32_numbers_do_not_match_x86_64_rules() {
    let x32 = |p: &Program, name: &str| {
        run(
            p.instructions(),
            &Data {
                nr: nr(name) | X32_SYSCALL_BIT,
                arch: syscalls::NATIVE_AUDIT_ARCH,
                args: [0; 6],
            },
        )
    };
    let listed = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(x32(&listed, "getpid"), errno(38));
    let unlisted = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(x32(&unlisted, "getpid"), KILL_PROCESS);
    // A deny rule must not be escapable through x32 either.
    let blocklist = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(x32(&blocklist, "mkdir"), KILL_PROCESS);
}

// ---------------------------------------------------------------------------
// Size and layout

#[test]
fn every_syscall_of_the_table_dispatches_correctly() {
    // Give each syscall its own errno so a wrong branch of the binary search
    // shows up.
    let entries: Vec<_> = syscalls::all()
        .map(|(name, n)| json!({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": n + 1000}))
        .collect();
    let p = compile_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": entries}));
    for (name, n) in syscalls::all() {
        assert_eq!(eval(&p, name, [0; 6]), errno(n as i32 + 1000), "{name}");
    }
    // Numbers that are not in the table get the default.
    let known: Vec<u32> = syscalls::all().map(|e| e.1).collect();
    for n in (0..1100).chain([u32::MAX, 0x3fff_ffff]) {
        if !known.contains(&n) {
            let d = Data {
                nr: n,
                arch: syscalls::NATIVE_AUDIT_ARCH,
                args: [0; 6],
            };
            assert_eq!(run(p.instructions(), &d), ALLOW, "nr {n}");
        }
    }
    assert!(p.instructions().len() < 1500, "{}", p.instructions().len());
}

#[test]
fn neighbouring_syscalls_with_one_action_share_a_run() {
    // The first 40 numbers allowed but a gap of three the profile does not
    // name (default), one with its own errno and one conditional syscall:
    // runs split exactly at their edges.
    let low: Vec<(&str, u32)> = syscalls::all().filter(|(_, n)| *n < 40).collect();
    let (odd, odd_nr) = low[low.len() / 2];
    let (cond, cond_nr) = low[low.len() / 3];
    let gap = |n: u32| (10..13).contains(&n);
    let allowed: Vec<u32> = low
        .iter()
        .map(|e| e.1)
        .filter(|n| !gap(*n) && *n != odd_nr && *n != cond_nr)
        .collect();
    let mut entries: Vec<_> = low
        .iter()
        .filter(|(_, n)| allowed.contains(n))
        .map(|(name, _)| json!({"names": [name], "action": "SCMP_ACT_ALLOW"}))
        .collect();
    entries.push(json!({"names": [odd], "action": "SCMP_ACT_ERRNO", "errnoRet": 7}));
    entries.push(json!({"names": [cond], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]}));
    let p = compile_json(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": entries}));
    for n in (0..200).chain([0x3fff_ffff, u32::MAX]) {
        let at = |a0: u64| {
            let d = Data {
                nr: n,
                arch: syscalls::NATIVE_AUDIT_ARCH,
                args: [a0, 0, 0, 0, 0, 0],
            };
            run(p.instructions(), &d)
        };
        let want = if n == odd_nr {
            errno(7)
        } else if n == cond_nr {
            assert_eq!(at(5), ALLOW, "nr {n}, arg 5");
            errno(1)
        } else if allowed.contains(&n) {
            ALLOW
        } else {
            errno(1)
        };
        assert_eq!(at(0), want, "nr {n}");
    }
    // Arch and x32 checks, a handful of jge nodes, three exits and the one
    // condition.
    assert!(p.instructions().len() < 40, "{}", p.instructions().len());
}

#[test]
fn long_rule_chains_use_far_jumps_correctly() {
    // 8 syscalls, each with 100 alternatives: the jumps from the search to
    // the later bodies are far beyond 255 instructions.
    let names = [
        "read", "write", "open", "close", "stat", "fstat", "lstat", "poll",
    ];
    let mut entries = Vec::new();
    for (i, name) in names.iter().enumerate() {
        for v in 0..100u64 {
            entries.push(json!({"names": [name], "action": "SCMP_ACT_ERRNO",
                "errnoRet": i as u64 * 1000 + v,
                "args": [{"index": 2, "value": v * 3 + (1 << 40), "op": "SCMP_CMP_EQ"}]}));
        }
    }
    let p = compile_json(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": entries}));
    assert!(p.instructions().len() > 2000);
    for (i, name) in names.iter().enumerate() {
        if syscall_number(name).is_none() {
            continue; // aarch64 lacks some
        }
        for v in 0..100u64 {
            let arg = v * 3 + (1 << 40);
            assert_eq!(
                eval(&p, name, [0, 0, arg, 0, 0, 0]),
                errno(i as i32 * 1000 + v as i32)
            );
            assert_eq!(eval(&p, name, [0, 0, arg + 1, 0, 0, 0]), ALLOW);
        }
    }
}

#[test]
fn oversized_filter_is_an_error() {
    let entries: Vec<_> = syscalls::all()
        .flat_map(|(name, _)| {
            (0..3).map(move |v| {
                json!({"names": [name], "action": "SCMP_ACT_ERRNO",
                       "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"},
                                {"index": 1, "value": v, "op": "SCMP_CMP_EQ"}]})
            })
        })
        .collect();
    let err = compile(&profile(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": entries}),
    ))
    .unwrap_err();
    assert!(matches!(err, Error::TooLarge { len } if len > MAX_INSTRUCTIONS));
}

// ---------------------------------------------------------------------------
// Behaviour: install in a forked child and make real syscalls.
//
// The child only makes raw syscalls and `_exit`s (async-signal-safe: the
// test harness is multi-threaded). Exit code 0 = everything as expected;
// other codes say which check failed.

const INSTALL_FAILED: i32 = 100;

fn in_child(p: &Program, body: fn() -> i32) -> WaitStatus {
    // SAFETY: the child only calls async-signal-safe functions.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => unsafe {
            // A child that cannot exit dies of SIGALRM instead of spinning:
            // musl's _exit retries a denied exit forever.
            libc::alarm(5);
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(INSTALL_FAILED + 1);
            }
            if p.install().is_err() {
                libc::_exit(INSTALL_FAILED);
            }
            libc::_exit(body())
        },
        ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
    }
}

fn assert_exit_ok(status: WaitStatus) {
    match status {
        WaitStatus::Exited(_, 0) => {}
        WaitStatus::Exited(_, INSTALL_FAILED) => panic!("install failed in child"),
        other => panic!("child failed: {other:?}"),
    }
}

/// `Ok(ret)` or `Err(errno)` of a raw syscall.
fn sys(nr: libc::c_long, a: u64, b: u64) -> Result<libc::c_long, i32> {
    // SAFETY: callers pass only harmless syscalls/arguments.
    let r = unsafe { libc::syscall(nr, a, b, 0u64, 0u64) };
    if r == -1 {
        Err(Errno::last_raw())
    } else {
        Ok(r)
    }
}

#[cfg(target_arch = "x86_64")]
const MISSING_DIR: &[u8] = b"/nonexistent-mica-seccomp-test/dir\0";

#[test]
#[cfg(target_arch = "x86_64")]
fn child_default_allow_mkdir_eperm() {
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_exit_ok(in_child(&p, || {
        let path = MISSING_DIR.as_ptr() as u64;
        // Without the filter this is ENOENT (the parent does not exist).
        if sys(libc::SYS_mkdir, path, 0o755) != Err(libc::EPERM) {
            return 1;
        }
        // mkdirat is not filtered: the kernel answers.
        if sys(libc::SYS_mkdirat, libc::AT_FDCWD as u64, path) != Err(libc::ENOENT) {
            return 2;
        }
        if sys(libc::SYS_getpid, 0, 0).is_err() {
            return 3;
        }
        0
    }));
    // Sanity: the same probe without a filter really gives ENOENT.
    assert_eq!(
        sys(libc::SYS_mkdir, MISSING_DIR.as_ptr() as u64, 0o755),
        Err(libc::ENOENT)
    );
}

#[test]
fn child_default_errno_with_allow_list() {
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["exit_group", "exit", "write", "getpid", "rt_sigreturn"],
                      "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_exit_ok(in_child(&p, || {
        match sys(libc::SYS_getpid, 0, 0) {
            Ok(pid) if pid > 0 => {}
            _ => return 1,
        }
        if sys(libc::SYS_getppid, 0, 0) != Err(38) {
            return 2;
        }
        if sys(libc::SYS_getuid, 0, 0) != Err(38) {
            return 3;
        }
        0 // exit_group must be allowed for this to reach the parent
    }));
}

#[test]
fn child_exit_is_denied_without_exit_group() {
    // Counter-check for the test above: without exit_group in the allow
    // list, the child cannot exit normally (glibc's _exit falls back to
    // exit, then crashes; musl's retries until the alarm of in_child).
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let status = in_child(&p, || 0);
    assert!(!matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

#[test]
fn child_personality_arg_condition() {
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["exit_group", "exit"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    assert_exit_ok(in_child(&p, || {
        // Query: allowed, returns the current persona.
        if sys(libc::SYS_personality, 0xffff_ffff, 0).is_err() {
            return 1;
        }
        // Set: denied.
        if sys(libc::SYS_personality, 0, 0) != Err(libc::EPERM) {
            return 2;
        }
        if sys(libc::SYS_personality, 0x0040_0000, 0) != Err(libc::EPERM) {
            return 3;
        }
        // The kernel would read this as 0xffffffff (unsigned int), but the
        // filter compares all 64 bits, like libseccomp.
        if sys(libc::SYS_personality, 0x1_ffff_ffff, 0) != Err(libc::EPERM) {
            return 4;
        }
        0
    }));
}

extern "C" fn exit_42_on_sigsys(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(42) }
}

/// Installs a SIGSYS handler that exits 42 (async-signal-safe).
fn catch_sigsys() -> bool {
    // SAFETY: plain sigaction with a handler that only calls _exit.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = exit_42_on_sigsys as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) == 0
    }
}

#[test]
fn child_kill_process_is_sigsys() {
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]
    }));
    let status = in_child(&p, || {
        // The handler must NOT run: KILL_PROCESS is not a catchable signal.
        if !catch_sigsys() {
            return 1;
        }
        if sys(libc::SYS_getpid, 0, 0).is_err() {
            return 2;
        }
        let _ = sys(libc::SYS_getppid, 0, 0);
        3 // still alive: the filter did not kill
    });
    assert!(
        matches!(status, WaitStatus::Signaled(_, nix::sys::signal::SIGSYS, _)),
        "{status:?}"
    );
}

#[test]
fn child_trap_raises_catchable_sigsys() {
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_TRAP"}]
    }));
    let status = in_child(&p, || {
        if !catch_sigsys() {
            return 1;
        }
        let _ = sys(libc::SYS_getppid, 0, 0);
        3
    });
    assert!(matches!(status, WaitStatus::Exited(_, 42)), "{status:?}");
}

#[test]
fn child_mixed_actions() {
    let p = compile_json(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77},
            {"names": ["getuid", "getgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 78},
            {"names": ["geteuid"], "action": "SCMP_ACT_TRACE"},
            {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
            {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 79,
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    assert_exit_ok(in_child(&p, || {
        if sys(libc::SYS_getppid, 0, 0) != Err(77) {
            return 1;
        }
        if sys(libc::SYS_getuid, 0, 0) != Err(78) || sys(libc::SYS_getgid, 0, 0) != Err(78) {
            return 2;
        }
        // TRACE without a tracer: the kernel fails the syscall with ENOSYS.
        if sys(libc::SYS_geteuid, 0, 0) != Err(libc::ENOSYS) {
            return 3;
        }
        if sys(libc::SYS_getpid, 0, 0).is_err() {
            return 4;
        }
        if sys(libc::SYS_getpgid, 1, 0) != Err(79) {
            return 5;
        }
        if sys(libc::SYS_getpgid, 0, 0).is_err() {
            return 6;
        }
        if sys(libc::SYS_getegid, 0, 0).is_err() {
            return 7;
        }
        0
    }));
}

#[test]
#[cfg(target_arch = "x86_64")]
fn child_x32_syscalls_get_the_listed_arch_action_or_die() {
    let listed = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["exit_group", "getpid"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_exit_ok(in_child(&listed, || {
        if sys(libc::SYS_getpid, 0, 0).is_err() {
            return 1;
        }
        // Without the filter: the pid, or ENOSYS if the kernel lacks x32.
        if sys(libc::SYS_getpid | 0x4000_0000, 0, 0) != Err(libc::EPERM) {
            return 2;
        }
        0
    }));
    let unlisted = compile_json(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["exit_group", "getpid"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let status = in_child(&unlisted, || {
        let _ = sys(libc::SYS_getpid | 0x4000_0000, 0, 0);
        3
    });
    assert!(
        matches!(status, WaitStatus::Signaled(_, nix::sys::signal::SIGSYS, _)),
        "{status:?}"
    );
}

/// mica's default profile for `mica launch` (what docker's default allows).
fn docker_like() -> LinuxSeccomp {
    crate::spec::default_seccomp::profile()
}

#[test]
fn docker_like_profile_is_small() {
    let p = compile(&docker_like()).expect("compiles");
    let len = p.instructions().len();
    // Neighbouring allowed syscalls share a run: 110 instructions on
    // x86_64 (539 when every syscall had its own test).
    assert!(len < 200, "{len} instructions");
    // clone3 hides its flags in memory: ENOSYS, so libc falls back to clone,
    // which is allowed only without namespace flags.
    assert_eq!(eval(&p, "clone3", [0; 6]), errno(38));
    assert_eq!(eval(&p, "clone", a0(libc::SIGCHLD as u64)), ALLOW);
    assert_eq!(eval(&p, "clone", a0(libc::CLONE_NEWUSER as u64)), errno(1));
    assert_eq!(eval(&p, "reboot", [0; 6]), errno(1));
    assert_eq!(eval(&p, "socket", a0(1)), ALLOW);
    assert_eq!(eval(&p, "socket", a0(40)), errno(1));
    assert!(p.skipped_syscalls().iter().any(|s| s == "chown32"));
}

#[test]
fn child_docker_like_profile_loads_and_filters() {
    let p = compile(&docker_like()).expect("compiles");
    assert_exit_ok(in_child(&p, || {
        if sys(libc::SYS_getpid, 0, 0).is_err() {
            return 1;
        }
        // syslog(SYSLOG_ACTION_SIZE_BUFFER) is harmless and not allowed.
        if sys(libc::SYS_syslog, 10, 0) != Err(libc::EPERM) {
            return 2;
        }
        match sys(
            libc::SYS_socket,
            libc::AF_UNIX as u64,
            libc::SOCK_STREAM as u64,
        ) {
            Ok(fd) => {
                let _ = sys(libc::SYS_close, fd as u64, 0);
            }
            Err(_) => return 3,
        }
        if sys(
            libc::SYS_socket,
            libc::AF_VSOCK as u64,
            libc::SOCK_STREAM as u64,
        ) != Err(libc::EPERM)
        {
            return 4;
        }
        if sys(libc::SYS_personality, 0xffff_ffff, 0).is_err() {
            return 5;
        }
        if sys(libc::SYS_personality, 0x0040_0000, 0) != Err(libc::EPERM) {
            return 6;
        }
        0
    }));
}
