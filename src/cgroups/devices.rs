//! Device rules on cgroup v2: an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the container's cgroup, which
//! is how cgroup v2 restricts devices (runc and crun do the same).
//!
//! The rules are the v1 ones (`v1::device_rule` lines: the config's, then
//! runc's default allow list) in listed order; a later rule overrides an
//! earlier one for the devices and access it covers, and what no rule covers
//! is denied, as runc does on v2. The program walks the rules from the last:
//! the first that matches the device and some of the requested access
//! decides those bits — a deny refuses, an allow grants them and the walk
//! goes on for the rest. (Unlike the v1 kernel, which removes only exactly
//! matching exceptions, a deny here also narrows an earlier wildcard allow.)

use super::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// The kernel's `BPF_DEVCG_ACC_*` bits.
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
/// The kernel's `BPF_DEVCG_DEV_*` types.
const DEV_BLOCK: u32 = 1;
const DEV_CHAR: u32 = 2;

/// One rule; `None` matches anything.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Rule {
    allow: bool,
    typ: Option<u32>,
    major: Option<u32>,
    minor: Option<u32>,
    /// `ACC_*` bits.
    access: u32,
}

impl Rule {
    /// A v1 rule line: `a`, or `TYPE MAJOR:MINOR ACCESS` with `*` for any.
    pub(super) fn parse(allow: bool, line: &str) -> Result<Rule> {
        let bad = |reason: &str| Error::InvalidValue {
            field: "linux.resources.devices".into(),
            value: format!("{line:?}"),
            reason: reason.into(),
        };
        let all = Rule {
            allow,
            typ: None,
            major: None,
            minor: None,
            access: ACC_MKNOD | ACC_READ | ACC_WRITE,
        };
        let mut parts = line.split_whitespace();
        let typ = match parts.next() {
            Some("a") => return Ok(all),
            Some("b") => DEV_BLOCK,
            Some("c") => DEV_CHAR,
            _ => return Err(bad("the type must be a, b or c")),
        };
        let (major, minor) = parts
            .next()
            .and_then(|n| n.split_once(':'))
            .ok_or_else(|| bad("expected MAJOR:MINOR"))?;
        let num = |n: &str| -> Result<Option<u32>> {
            match n {
                "*" => Ok(None),
                // The program compares with 32-bit signed immediates.
                n => match n.parse::<u32>() {
                    Ok(v) if v <= i32::MAX as u32 => Ok(Some(v)),
                    _ => Err(bad("a device number must be * or 0..2^31")),
                },
            }
        };
        let mut access = 0;
        for c in parts.next().unwrap_or("rwm").chars() {
            access |= match c {
                'm' => ACC_MKNOD,
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                _ => return Err(bad("the access must consist of r, w and m")),
            };
        }
        if parts.next().is_some() {
            return Err(bad("trailing fields"));
        }
        Ok(Rule {
            typ: Some(typ),
            major: num(major)?,
            minor: num(minor)?,
            access,
            ..all
        })
    }
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const MOV64_X: u8 = 0xbf; // dst = src
const MOV64_K: u8 = 0xb7; // dst = imm
const RSH32_K: u8 = 0x74; // dst >>= imm (32-bit)
const AND32_K: u8 = 0x54; // dst &= imm (32-bit)
const JEQ_K: u8 = 0x15; // if dst == imm: pc += off
const JNE_K: u8 = 0x55; // if dst != imm: pc += off
const EXIT: u8 = 0x95;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// The program for `rules` (in listed order). Registers: r2 device type,
/// r3 the access bits not granted yet, r4 major, r5 minor, r6 scratch.
pub(super) fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0), // access_type = (access << 16) | type
        insn(MOV64_X, 3, 2, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        // Every jump in a block goes to its end: the next rule.
        let mut block = Vec::with_capacity(10);
        for (reg, v) in [(2, r.typ), (4, r.major), (5, r.minor)] {
            if let Some(v) = v {
                block.push(insn(JNE_K, reg, 0, 0, v as i32));
            }
        }
        block.push(insn(MOV64_X, 6, 3, 0, 0));
        block.push(insn(AND32_K, 6, 0, 0, r.access as i32));
        block.push(insn(JEQ_K, 6, 0, 0, 0)); // none of the requested access
        if r.allow {
            block.push(insn(AND32_K, 3, 0, 0, !r.access as i32));
            block.push(insn(JNE_K, 3, 0, 0, 0)); // more to grant: go on
            block.push(insn(MOV64_K, 0, 0, 0, 1));
        } else {
            block.push(insn(MOV64_K, 0, 0, 0, 0));
        }
        block.push(insn(EXIT, 0, 0, 0, 0));
        let n = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JEQ_K || ins.code == JNE_K {
                ins.off = (n - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0)); // what no rule granted is denied
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Programs of ancestor cgroups keep applying too (all must allow).
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The head of `union bpf_attr` for BPF_PROG_LOAD (the kernel zero-fills the rest).
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// `union bpf_attr` for BPF_PROG_QUERY.
#[repr(C)]
#[derive(Default)]
struct ProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// `union bpf_attr` for BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
struct GetFdById {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Load the program; on a refusal, load again with the verifier's log and
/// put its last line in the error.
fn load(prog: &[Insn], dir: &Path) -> Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"mica_device");
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    let err = match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => e,
    };
    let mut log = vec![0u8; 64 * 1024];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    let _ = bpf(BPF_PROG_LOAD, &mut attr).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) });
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]).into_owned();
    let last = text.lines().rev().find(|l| !l.trim().is_empty());
    Err(Error::Io {
        op: "load the device-rules eBPF program (BPF_PROG_LOAD) for",
        path: dir.to_path_buf(),
        err: match last {
            Some(l) => std::io::Error::new(err.kind(), format!("{err}; verifier: {l}")),
            None => err,
        },
    })
}

/// Attach the program for `rules` to the cgroup2 directory `dir`, in
/// place of the programs attached there before (a reused cgroup, an
/// update): the new one is attached first, so the cgroup is never without
/// one. Inside a user namespace, where bpf(2) is not ours to call and the
/// host's devices are not reachable anyway, a failure is let pass with a
/// warning (runc lets it pass silently).
pub(super) fn attach(dir: &Path, rules: &[Rule]) -> Result<()> {
    match replace(dir, rules) {
        Err(e) if in_user_namespace() => {
            crate::log::warn(&format!(
                "device rules not enforced in a user namespace: {e}"
            ));
            Ok(())
        }
        r => r,
    }
}

fn replace(dir: &Path, rules: &[Rule]) -> Result<()> {
    let io = |op: &'static str| {
        move |err| Error::Io {
            op,
            path: dir.to_path_buf(),
            err,
        }
    };
    let prog = load(&program(rules), dir)?;
    let cg = super::at::open(dir, libc::O_RDONLY | libc::O_DIRECTORY).map_err(io("open"))?;
    let old = attached(&cg).map_err(io("list the device eBPF programs (BPF_PROG_QUERY) of"))?;
    let mut attr = ProgAttach {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // The cgroup holds the program from here on; our fd can go.
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(io(
        "attach the device-rules eBPF program (BPF_PROG_ATTACH) to",
    ))?;
    for id in old {
        let mut get = GetFdById {
            prog_id: id,
            next_id: 0,
            open_flags: 0,
        };
        let old = match bpf(BPF_PROG_GET_FD_BY_ID, &mut get) {
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as i32) },
            // Detached meanwhile; or one we may not open (another
            // manager's, behind an LSM): left in place, as runc leaves it.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::EPERM | libc::EACCES)
                ) =>
            {
                continue
            }
            Err(e) => {
                return Err(io(
                    "open an old device eBPF program (BPF_PROG_GET_FD_BY_ID) of",
                )(e))
            }
        };
        attr.attach_bpf_fd = old.as_raw_fd() as u32;
        attr.attach_flags = 0;
        match bpf(BPF_PROG_DETACH, &mut attr) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                return Err(io(
                    "detach an old device eBPF program (BPF_PROG_DETACH) from",
                )(e))
            }
        }
    }
    Ok(())
}

/// The ids of the device programs attached to this cgroup itself.
pub(super) fn attached(cg: &std::fs::File) -> std::io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut q = ProgQuery {
            target_fd: cg.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match bpf(BPF_PROG_QUERY, &mut q) {
            Ok(_) => {
                ids.truncate(q.prog_cnt as usize);
                return Ok(ids);
            }
            // More than fit: prog_cnt says how many there are.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && q.prog_cnt as usize > ids.len() => {
                ids = vec![0; q.prog_cnt as usize];
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether mica runs in a user namespace other than the initial one.
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `prog` on one request, as the kernel would: an interpreter of
    /// the instructions `program` emits.
    fn run(prog: &[Insn], typ: u32, major: u32, minor: u32, access: u32) -> u64 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = ctx[i.off as usize / 4] as u64;
                }
                MOV64_X => r[dst] = r[src],
                MOV64_K => r[dst] = i.imm as i64 as u64,
                RSH32_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                AND32_K => r[dst] = ((r[dst] as u32) & i.imm as u32) as u64,
                JEQ_K | JNE_K => {
                    let eq = r[dst] == i.imm as i64 as u64;
                    if eq == (i.code == JEQ_K) {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
            assert!(pc < prog.len(), "ran off the end");
        }
    }

    fn rules(lines: &[(bool, &str)]) -> Vec<Rule> {
        lines
            .iter()
            .map(|(allow, l)| Rule::parse(*allow, l).unwrap())
            .collect()
    }

    const R: u32 = ACC_READ;
    const W: u32 = ACC_WRITE;
    const M: u32 = ACC_MKNOD;

    #[test]
    fn parses_v1_rule_lines() {
        let r = Rule::parse(true, "c 1:3 rw").unwrap();
        assert_eq!(
            (r.typ, r.major, r.minor, r.access),
            (Some(DEV_CHAR), Some(1), Some(3), R | W)
        );
        let r = Rule::parse(false, "b *:* m").unwrap();
        assert_eq!(
            (r.allow, r.typ, r.major, r.minor, r.access),
            (false, Some(DEV_BLOCK), None, None, M)
        );
        assert_eq!(Rule::parse(true, "a").unwrap().access, R | W | M);
        for bad in [
            "p 1:3 rwm",
            "c 1 rwm",
            "c 1:3 rwx",
            "c 4294967295:0 r",
            "c 1:3 r x",
            "",
        ] {
            assert!(Rule::parse(true, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nothing_granted_is_denied() {
        let p = program(&[]);
        assert_eq!(run(&p, DEV_CHAR, 1, 3, R), 0);
        let p = program(&rules(&[(false, "a"), (true, "c 1:3 rwm")]));
        assert_eq!(run(&p, DEV_CHAR, 1, 3, R | W), 1);
        assert_eq!(run(&p, DEV_CHAR, 1, 5, R), 0);
        assert_eq!(
            run(&p, DEV_BLOCK, 1, 3, R),
            0,
            "a char rule is not a block one"
        );
    }

    #[test]
    fn every_requested_access_must_be_granted() {
        let p = program(&rules(&[(true, "c 1:3 r")]));
        assert_eq!(run(&p, DEV_CHAR, 1, 3, R), 1);
        assert_eq!(run(&p, DEV_CHAR, 1, 3, W), 0);
        assert_eq!(run(&p, DEV_CHAR, 1, 3, R | W), 0);
        // Granted piecewise by two rules.
        let p = program(&rules(&[(true, "c 1:3 r"), (true, "c *:* w")]));
        assert_eq!(run(&p, DEV_CHAR, 1, 3, R | W), 1);
        assert_eq!(run(&p, DEV_CHAR, 1, 4, R | W), 0);
    }

    #[test]
    fn a_later_rule_overrides_an_earlier_one() {
        let p = program(&rules(&[
            (true, "c 240:* rw"),
            (false, "c 240:1 w"),
            (true, "b 8:* m"),
        ]));
        assert_eq!(run(&p, DEV_CHAR, 240, 0, R | W), 1);
        assert_eq!(run(&p, DEV_CHAR, 240, 1, R), 1);
        assert_eq!(
            run(&p, DEV_CHAR, 240, 1, W),
            0,
            "the deny narrows the wildcard"
        );
        assert_eq!(run(&p, DEV_CHAR, 240, 1, R | W), 0);
        assert_eq!(run(&p, DEV_BLOCK, 8, 0, M), 1);
        assert_eq!(run(&p, DEV_BLOCK, 8, 0, R), 0);
        // A deny-all after allows wins; an allow-all after a deny-all too.
        let p = program(&rules(&[(true, "c 1:3 rwm"), (false, "a")]));
        assert_eq!(run(&p, DEV_CHAR, 1, 3, R), 0);
        let p = program(&rules(&[(false, "a"), (true, "a")]));
        assert_eq!(run(&p, DEV_BLOCK, 7, 7, R | W | M), 1);
    }

    #[test]
    fn the_default_allow_list_after_a_deny_all() {
        let mut rs = rules(&[(false, "a")]);
        rs.extend(
            super::super::v1::DEFAULT_ALLOW
                .iter()
                .map(|l| Rule::parse(true, l).unwrap()),
        );
        let p = program(&rs);
        assert_eq!(run(&p, DEV_CHAR, 1, 3, R | W), 1, "/dev/null");
        assert_eq!(run(&p, DEV_CHAR, 136, 4, R | W), 1, "/dev/pts/4");
        assert_eq!(run(&p, DEV_BLOCK, 8, 0, M), 1, "mknod of anything");
        assert_eq!(run(&p, DEV_BLOCK, 8, 0, R), 0, "/dev/sda");
        assert_eq!(run(&p, DEV_CHAR, 1, 1, R), 0, "/dev/mem");
    }

    /// The kernel's verifier takes the program (as root: loading needs
    /// CAP_BPF or CAP_SYS_ADMIN; skipped otherwise).
    #[test]
    fn the_kernel_loads_the_program() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let mut rs = rules(&[(false, "a"), (true, "c 240:* rw"), (false, "c 240:1 w")]);
        rs.push(Rule::parse(true, "b *:* m").unwrap());
        load(&program(&rs), Path::new("(test)")).expect("verifier refused the program");
    }
}
