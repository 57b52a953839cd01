//! cgroup v1 specifics: one directory per hierarchy, per-controller files.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Instant;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxHugepageLimit, LinuxMemory,
};

use super::stats::{
    parse_error, read_key_values, read_value, Blkio, BlkioEntry, CpuSet, CpuUsage, Hugetlb, Memory,
    MemoryEntry, Throttling,
};
use super::{
    check_page_size, invalid, nonzero, read, read_opt, write, write_error, Error, HierarchyDir,
    Result, POLL, WAIT,
};

/// Fill empty cpuset.cpus / cpuset.mems along the path to the cgroup, from
/// the nearest ancestor that has both: a v1 cpuset cgroup with empty cpus or
/// mems cannot take processes. Not only the dirs this cgroup created: an
/// ancestor that another container created a moment ago may still be empty.
pub(super) fn init_cpuset(h: &HierarchyDir) -> Result<()> {
    const FILES: [&str; 2] = ["cpuset.cpus", "cpuset.mems"];
    // From the leaf up: each level's values, until one has both.
    let mut levels: Vec<(&Path, [String; 2])> = Vec::new();
    let mut d = h.dir.as_path();
    let mut source = [String::new(), String::new()];
    while d.starts_with(&h.mount) {
        let value = |f: &str| read(&d.join(f)).map(|v| v.trim().to_string());
        // A v1 cpuset we made a moment ago is empty (or, with the parent's
        // cgroup.clone_children, has the parent's values, written again).
        let vals = if d == h.dir && h.is_ours(d) {
            Default::default()
        } else {
            [value(FILES[0])?, value(FILES[1])?]
        };
        if vals.iter().all(|v| !v.is_empty()) || d == h.mount {
            source = vals;
            break;
        }
        levels.push((d, vals));
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    // Top-down: an empty value takes the one above it.
    for (dir, vals) in levels.iter().rev() {
        for i in 0..2 {
            if vals[i].is_empty() {
                if !source[i].is_empty() {
                    write(&dir.join(FILES[i]), &source[i])?;
                }
            } else {
                source[i] = vals[i].clone();
            }
        }
    }
    Ok(())
}

/// Check the memory values that must be consistent before writing anything.
/// `limit`/`swap` are already filtered by `nonzero`.
pub(super) fn check_memory_values(
    limit: Option<i64>,
    swap: Option<i64>,
    reservation: Option<i64>,
) -> Result<()> {
    for (field, v) in [
        ("memory.limit", limit),
        ("memory.swap", swap),
        ("memory.reservation", reservation),
    ] {
        if let Some(v) = v.filter(|&v| v < -1) {
            return Err(invalid(field, v, "must be a byte count or -1 (unlimited)"));
        }
    }
    if let Some(s) = swap.filter(|&s| s != -1) {
        match limit {
            None | Some(-1) => {
                return Err(invalid(
                    "memory.swap",
                    s,
                    "a memory+swap limit needs a memory limit (memory.limit)",
                ))
            }
            Some(l) if s < l => {
                return Err(invalid(
                    "memory.swap",
                    s,
                    &format!("memory+swap limit must be >= memory.limit ({l})"),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn set_memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    let limit = nonzero(m.limit());
    let mut swap = nonzero(m.swap());
    let reservation = nonzero(m.reservation());
    check_memory_values(limit, swap, reservation)?;
    if let Some(s) = m.swappiness().filter(|&s| s > 100) {
        return Err(invalid("memory.swappiness", s, "must be 0..=100"));
    }

    let limit_file = dir.join("memory.limit_in_bytes");
    let memsw_file = dir.join("memory.memsw.limit_in_bytes");
    // As runc: "memory unlimited, swap not given" means both unlimited
    // (otherwise the kernel refuses limit > memsw).
    if limit == Some(-1) && swap.is_none() && memsw_file.exists() {
        swap = Some(-1);
    }
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // The kernel requires memory.limit <= memsw.limit at all times,
            // so the order depends on the current limit.
            let cur = read(&limit_file)?;
            let cur: i128 = cur.trim().parse().map_err(|_| Error::Parse {
                what: limit_file.display().to_string(),
                detail: format!("not a number: {:?}", cur.trim()),
            })?;
            if s == -1 || cur < i128::from(s) {
                write(&memsw_file, &s.to_string())?;
                write(&limit_file, &l.to_string())?;
            } else {
                write(&limit_file, &l.to_string())?;
                write(&memsw_file, &s.to_string())?;
            }
        }
        (Some(l), None) => write(&limit_file, &l.to_string())?,
        (None, Some(s)) => write(&memsw_file, &s.to_string())?,
        (None, None) => {}
    }
    if let Some(r) = reservation {
        write(&dir.join("memory.soft_limit_in_bytes"), &r.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        write(&dir.join("memory.swappiness"), &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        write(&dir.join("memory.oom_control"), "1")?;
    }
    if let Some(k) = nonzero(m.kernel()) {
        set_kmem(dir, "memory.kmem.limit_in_bytes", "kernel", k)?;
    }
    if let Some(k) = nonzero(m.kernel_tcp()) {
        set_kmem(dir, "memory.kmem.tcp.limit_in_bytes", "kernelTCP", k)?;
    }
    Ok(())
}

fn set_kmem(dir: &Path, file: &str, field: &str, v: i64) -> Result<()> {
    write(&dir.join(file), &v.to_string()).map_err(|e| match e {
        Error::Write { path, value, err } => Error::Unsupported(format!(
            "kernel memory limit linux.resources.memory.{field}: writing {value} to {} failed \
             ({err}); kernel memory limits are deprecated and not supported by this kernel, \
             remove the setting",
            path.display()
        )),
        e => e,
    })
}

pub(super) fn set_cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(s) = nonzero(c.shares()) {
        write(&dir.join("cpu.shares"), &s.to_string())?;
    }
    if let Some(p) = nonzero(c.period()) {
        write(&dir.join("cpu.cfs_period_us"), &p.to_string())?;
    }
    if let Some(q) = nonzero(c.quota()) {
        write(&dir.join("cpu.cfs_quota_us"), &q.to_string())?;
    }
    if let Some(b) = c.burst() {
        write(&dir.join("cpu.cfs_burst_us"), &b.to_string())?;
    }
    if let Some(p) = nonzero(c.realtime_period()) {
        write(&dir.join("cpu.rt_period_us"), &p.to_string())?;
    }
    if let Some(r) = nonzero(c.realtime_runtime()) {
        write(&dir.join("cpu.rt_runtime_us"), &r.to_string())?;
    }
    if let Some(i) = c.idle() {
        write(&dir.join("cpu.idle"), &i.to_string())?;
    }
    Ok(())
}

pub(super) fn set_blkio(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    // CFQ's blkio.weight, or BFQ's blkio.bfq.weight on newer kernels.
    let (weight, weight_device) =
        if !dir.join("blkio.weight").exists() && dir.join("blkio.bfq.weight").exists() {
            ("blkio.bfq.weight", "blkio.bfq.weight_device")
        } else {
            ("blkio.weight", "blkio.weight_device")
        };
    if let Some(w) = nonzero(b.weight()) {
        write(&dir.join(weight), &w.to_string())?;
    }
    if let Some(w) = nonzero(b.leaf_weight()) {
        write(&dir.join("blkio.leaf_weight"), &w.to_string())?;
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            write(
                &dir.join(weight_device),
                &format!("{}:{} {}", wd.major(), wd.minor(), w),
            )?;
        }
        if let Some(w) = wd.leaf_weight() {
            write(
                &dir.join("blkio.leaf_weight_device"),
                &format!("{}:{} {}", wd.major(), wd.minor(), w),
            )?;
        }
    }
    for (file, list) in [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ] {
        for t in list.iter().flatten() {
            write(
                &dir.join(file),
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

pub(super) fn set_hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for l in limits {
        check_page_size(l.page_size())?;
    }
    for l in limits {
        let size = l.page_size();
        let v = l.limit().to_string();
        write(&dir.join(format!("hugetlb.{size}.limit_in_bytes")), &v)?;
        // Reservation accounting (kernel >= 5.7), as runc.
        let rsvd = dir.join(format!("hugetlb.{size}.rsvd.limit_in_bytes"));
        if rsvd.exists() {
            write(&rsvd, &v)?;
        }
    }
    Ok(())
}

/// One OCI device rule as a devices.allow / devices.deny line:
/// "a", or "c 1:3 rwm" with "*" for a wildcard major/minor.
pub(super) fn device_rule(rule: &LinuxDeviceCgroup) -> Result<String> {
    let t = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => return Ok("a".to_string()),
        LinuxDeviceType::B => "b",
        LinuxDeviceType::C | LinuxDeviceType::U => "c",
        LinuxDeviceType::P => {
            return Err(invalid(
                "devices.type",
                "p",
                "the device cgroup only knows a (all), b (block) and c (char)",
            ))
        }
    };
    let num = |n: Option<i64>| match n {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".to_string(),
    };
    let access = rule
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(invalid(
            "devices.access",
            format!("{access:?}"),
            "must consist of r, w and m",
        ));
    }
    Ok(format!(
        "{t} {}:{} {access}",
        num(rule.major()),
        num(rule.minor())
    ))
}

/// Allowed after the configured rules, as runc does (its specconv appends
/// these to every config): mknod of anything, and the devices every
/// container gets (/dev/null, zero, full, random, urandom, tty, ptmx,
/// pts/*). Without them a config's usual leading "deny all" would make even
/// /dev/null unusable.
pub(super) const DEFAULT_ALLOW: [&str; 10] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// The rules of `set_devices` (the config's, then `DEFAULT_ALLOW`), for
/// the cgroup2 device program.
pub(super) fn device_rules_v2(rules: &[LinuxDeviceCgroup]) -> Result<Vec<super::devices::Rule>> {
    let mut v = Vec::with_capacity(rules.len() + DEFAULT_ALLOW.len());
    for r in rules {
        v.push(super::devices::Rule::parse(r.allow(), &device_rule(r)?)?);
    }
    for line in DEFAULT_ALLOW {
        v.push(super::devices::Rule::parse(true, line)?);
    }
    Ok(v)
}

/// Write the rules in order to devices.allow / devices.deny, then
/// `DEFAULT_ALLOW` (only when there are rules at all). Each file is opened
/// once: the kernel takes one rule per write.
pub(super) fn set_devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let lines = rules
        .iter()
        .map(|r| Ok((r.allow(), device_rule(r)?)))
        .collect::<Result<Vec<_>>>()?;
    if lines.is_empty() {
        return Ok(());
    }
    let mut files: [Option<(PathBuf, File)>; 2] = [None, None];
    let mut put = |allow: bool, line: &str| -> Result<()> {
        let slot = &mut files[usize::from(allow)];
        if slot.is_none() {
            let path = dir.join(if allow {
                "devices.allow"
            } else {
                "devices.deny"
            });
            let f = super::at::open(&path, libc::O_WRONLY)
                .map_err(|err| write_error(&path, line, err))?;
            *slot = Some((path, f));
        }
        let (path, f) = slot.as_mut().expect("opened above");
        f.write_all(line.as_bytes())
            .map_err(|err| write_error(path, line, err))
    };
    for (allow, line) in &lines {
        put(*allow, line)?;
    }
    for line in DEFAULT_ALLOW {
        put(true, line)?;
    }
    Ok(())
}

/// The freezer.state content, None if the cgroup does not exist.
pub(super) fn freezer_state(dir: &Path) -> Result<Option<String>> {
    Ok(read_opt(&dir.join("freezer.state"))?.map(|s| s.trim().to_string()))
}

pub(super) fn freeze(dir: &Path) -> Result<()> {
    let state = dir.join("freezer.state");
    let deadline = Instant::now() + WAIT;
    let mut i = 0u32;
    loop {
        // Freezing can get stuck (e.g. a task in an uninterruptible
        // sleep); thawing and freezing again occasionally unsticks it.
        if i % 50 == 49 {
            write(&state, "THAWED")?;
            sleep(POLL);
        }
        write(&state, "FROZEN")?;
        if read(&state)?.trim() == "FROZEN" {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = write(&state, "THAWED");
            return Err(Error::Timeout {
                what: "freezer.state to read FROZEN (thawed again)".into(),
                path: state,
            });
        }
        sleep(POLL);
        i += 1;
    }
}

pub(super) fn thaw(dir: &Path) -> Result<()> {
    let state = dir.join("freezer.state");
    let deadline = Instant::now() + WAIT;
    loop {
        write(&state, "THAWED")?;
        if read(&state)?.trim() == "THAWED" {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: "freezer.state to read THAWED".into(),
                path: state,
            });
        }
        sleep(POLL);
    }
}

pub(super) fn is_frozen(dir: &Path) -> Result<bool> {
    Ok(freezer_state(dir)?.is_some_and(|s| s == "FROZEN"))
}

// ---------------------------------------------------------------------------
// Statistics (`mica events`), as runc 1.1's cgroup v1 manager reads them
// ---------------------------------------------------------------------------

/// USER_HZ, the unit of cpuacct.stat (a constant on Linux, as runc takes it).
const CLOCK_TICKS: u64 = 100;

/// cpuacct.usage (total), cpuacct.usage_percpu, cpuacct.stat (user and
/// system, in USER_HZ ticks) and cpuacct.usage_all (per-CPU user and
/// system); all nanoseconds.
pub(super) fn cpuacct_stats(dir: &Path, u: &mut CpuUsage) -> Result<()> {
    if let Some(v) = read_value(&dir.join("cpuacct.usage"))? {
        u.total = v;
    }
    let f = dir.join("cpuacct.usage_percpu");
    if let Some(text) = read_opt(&f)? {
        u.percpu = text
            .split_whitespace()
            .map(|v| {
                v.parse()
                    .map_err(|_| parse_error(&f, format!("not a number: {v:?}")))
            })
            .collect::<Result<_>>()?;
    }
    let f = dir.join("cpuacct.stat");
    if let Some(kv) = read_key_values(&f)? {
        let ns = |key: &str| {
            kv.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.saturating_mul(1_000_000_000 / CLOCK_TICKS))
                .ok_or_else(|| parse_error(&f, format!("no {key:?} line")))
        };
        u.user = ns("user")?;
        u.kernel = ns("system")?;
    }
    let f = dir.join("cpuacct.usage_all");
    if let Some(text) = read_opt(&f)? {
        let (kernel, user) = parse_usage_all(&text).map_err(|d| parse_error(&f, d))?;
        u.percpu_kernel = kernel;
        u.percpu_user = user;
    }
    Ok(())
}

/// cpuacct.usage_all: a "cpu user system" header, then one line per CPU.
/// Returns (system, user) per CPU.
pub(super) fn parse_usage_all(text: &str) -> std::result::Result<(Vec<u64>, Vec<u64>), String> {
    let (mut kernel, mut user) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 3 {
            continue;
        }
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("not a number: {s:?} in {line:?}"))
        };
        user.push(num(f[1])?);
        kernel.push(num(f[2])?);
    }
    Ok((kernel, user))
}

/// cpu.stat: nr_periods, nr_throttled, throttled_time (nanoseconds).
pub(super) fn cpu_throttling(dir: &Path, t: &mut Throttling) -> Result<()> {
    for (k, v) in read_key_values(&dir.join("cpu.stat"))?.unwrap_or_default() {
        match k.as_str() {
            "nr_periods" => t.periods = v,
            "nr_throttled" => t.throttled_periods = v,
            "throttled_time" => t.throttled_time = v,
            _ => {}
        }
    }
    Ok(())
}

/// cpuset.cpus / cpuset.mems as lists, and the cpuset flags.
pub(super) fn cpuset_stats(dir: &Path, c: &mut CpuSet) -> Result<()> {
    for (file, list) in [("cpuset.cpus", &mut c.cpus), ("cpuset.mems", &mut c.mems)] {
        let f = dir.join(file);
        if let Some(text) = read_opt(&f)? {
            *list = parse_cpu_list(text.trim()).map_err(|d| parse_error(&f, d))?;
        }
    }
    for (file, v) in [
        ("cpuset.cpu_exclusive", &mut c.cpu_exclusive),
        ("cpuset.mem_hardwall", &mut c.mem_hardwall),
        ("cpuset.mem_exclusive", &mut c.mem_exclusive),
        ("cpuset.memory_migrate", &mut c.memory_migrate),
        ("cpuset.memory_spread_page", &mut c.memory_spread_page),
        ("cpuset.memory_spread_slab", &mut c.memory_spread_slab),
        ("cpuset.memory_pressure", &mut c.memory_pressure),
        ("cpuset.sched_load_balance", &mut c.sched_load_balance),
    ] {
        if let Some(n) = read_value(&dir.join(file))? {
            *v = n;
        }
    }
    let f = dir.join("cpuset.sched_relax_domain_level");
    if let Some(text) = read_opt(&f)? {
        c.sched_relax_domain_level = text
            .trim()
            .parse()
            .map_err(|_| parse_error(&f, format!("not a number: {:?}", text.trim())))?;
    }
    Ok(())
}

/// "0-3,8,10-11" -> [0, 1, 2, 3, 8, 10, 11]; "" -> [].
pub(super) fn parse_cpu_list(s: &str) -> std::result::Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let num = |n: &str| {
            n.parse::<u16>()
                .map_err(|_| format!("not a cpu or node number: {n:?} in {s:?}"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("range {part:?} is backwards"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    Ok(out)
}

/// memory.stat (raw; `cache` from it), and usage/max/failcnt/limit of
/// memory, memsw (swap), kmem (kernel) and kmem.tcp. Nothing without
/// memory.stat; an entry whose usage file is missing (no swap accounting,
/// no kmem) stays zero.
pub(super) fn memory_stats(dir: &Path, m: &mut Memory) -> Result<()> {
    if !super::stats::memory_raw(dir, "cache", m)? {
        return Ok(());
    }
    let entry = |prefix: &str| -> Result<MemoryEntry> {
        let file = |name: &str| dir.join(format!("{prefix}.{name}"));
        let Some(usage) = read_value(&file("usage_in_bytes"))? else {
            return Ok(MemoryEntry::default());
        };
        Ok(MemoryEntry {
            usage,
            max: read_value(&file("max_usage_in_bytes"))?.unwrap_or(0),
            failcnt: read_value(&file("failcnt"))?.unwrap_or(0),
            // Newer kernels have no memory.kmem.limit_in_bytes.
            limit: read_value(&file("limit_in_bytes"))?.unwrap_or(0),
        })
    };
    m.usage = entry("memory")?;
    m.swap = entry("memory.memsw")?;
    m.kernel = entry("memory.kmem")?;
    m.kernel_tcp = entry("memory.kmem.tcp")?;
    Ok(())
}

/// The blkio files runc reads, in its order: the first group whose first
/// file has lines wins (BFQ's debug files, BFQ's, CFQ's, the throttling
/// policy's recursive, then its non-recursive ones).
const BLKIO_GROUPS: [&[(&str, BlkioList)]; 5] = {
    use BlkioList::*;
    [
        &[
            ("blkio.bfq.sectors_recursive", Sectors),
            ("blkio.bfq.io_service_time_recursive", ServiceTime),
            ("blkio.bfq.io_wait_time_recursive", WaitTime),
            ("blkio.bfq.io_merged_recursive", Merged),
            ("blkio.bfq.io_queued_recursive", Queued),
            ("blkio.bfq.time_recursive", Time),
            ("blkio.bfq.io_serviced_recursive", Serviced),
            ("blkio.bfq.io_service_bytes_recursive", ServiceBytes),
        ],
        &[
            ("blkio.bfq.io_serviced_recursive", Serviced),
            ("blkio.bfq.io_service_bytes_recursive", ServiceBytes),
        ],
        &[
            ("blkio.sectors_recursive", Sectors),
            ("blkio.io_service_time_recursive", ServiceTime),
            ("blkio.io_wait_time_recursive", WaitTime),
            ("blkio.io_merged_recursive", Merged),
            ("blkio.io_queued_recursive", Queued),
            ("blkio.time_recursive", Time),
            ("blkio.io_serviced_recursive", Serviced),
            ("blkio.io_service_bytes_recursive", ServiceBytes),
        ],
        &[
            ("blkio.throttle.io_serviced_recursive", Serviced),
            ("blkio.throttle.io_service_bytes_recursive", ServiceBytes),
        ],
        &[
            ("blkio.throttle.io_serviced", Serviced),
            ("blkio.throttle.io_service_bytes", ServiceBytes),
        ],
    ]
};

#[derive(Clone, Copy)]
enum BlkioList {
    ServiceBytes,
    Serviced,
    Queued,
    ServiceTime,
    WaitTime,
    Merged,
    Time,
    Sectors,
}

fn blkio_list(b: &mut Blkio, l: BlkioList) -> &mut Vec<BlkioEntry> {
    match l {
        BlkioList::ServiceBytes => &mut b.io_service_bytes_recursive,
        BlkioList::Serviced => &mut b.io_serviced_recursive,
        BlkioList::Queued => &mut b.io_queued_recursive,
        BlkioList::ServiceTime => &mut b.io_service_time_recursive,
        BlkioList::WaitTime => &mut b.io_wait_time_recursive,
        BlkioList::Merged => &mut b.io_merged_recursive,
        BlkioList::Time => &mut b.io_time_recursive,
        BlkioList::Sectors => &mut b.sectors_recursive,
    }
}

pub(super) fn blkio_stats(dir: &Path, b: &mut Blkio) -> Result<()> {
    for group in BLKIO_GROUPS {
        for (i, (file, list)) in group.iter().enumerate() {
            let f = dir.join(file);
            let entries = match read_opt(&f)? {
                // runc moves on to the next group when the first file of
                // one does not parse; a later one is an error.
                Some(text) if i == 0 => parse_blkio(&text).unwrap_or_default(),
                Some(text) => parse_blkio(&text).map_err(|d| parse_error(&f, d))?,
                None => Vec::new(),
            };
            if entries.is_empty() {
                if i == 0 {
                    // Not this policy (or nothing counted yet): the next.
                    break;
                }
                return Ok(());
            }
            *blkio_list(b, *list) = entries;
            if i == group.len() - 1 {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// "8:0 Read 4096" (or "8:0 4096" for the time and sector files) lines;
/// the "Total N" line is skipped.
pub(super) fn parse_blkio(text: &str) -> std::result::Result<Vec<BlkioEntry>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split([' ', ':']).filter(|s| !s.is_empty()).collect();
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("not a number: {s:?} in {line:?}"))
        };
        let (op, value) = match f.len() {
            2 if f[0] == "Total" => continue,
            3 => ("", f[2]),
            4 => (f[2], f[3]),
            _ => return Err(format!("not \"major:minor [op] value\": {line:?}")),
        };
        out.push(BlkioEntry {
            major: num(f[0])?,
            minor: num(f[1])?,
            op: op.to_string(),
            value: num(value)?,
        });
    }
    Ok(out)
}

/// hugetlb.<size>.rsvd.* (kernel >= 5.7, as runc prefers them), else
/// hugetlb.<size>.*: usage_in_bytes, max_usage_in_bytes, failcnt.
pub(super) fn hugetlb_stats(
    dir: &Path,
    sizes: &[String],
    out: &mut std::collections::BTreeMap<String, Hugetlb>,
) -> Result<()> {
    for size in sizes {
        let rsvd = format!("hugetlb.{size}.rsvd");
        let prefix = if dir.join(format!("{rsvd}.usage_in_bytes")).exists() {
            rsvd
        } else {
            format!("hugetlb.{size}")
        };
        let file = |name: &str| dir.join(format!("{prefix}.{name}"));
        let Some(usage) = read_value(&file("usage_in_bytes"))? else {
            continue;
        };
        out.insert(
            size.clone(),
            Hugetlb {
                usage,
                max: read_value(&file("max_usage_in_bytes"))?.unwrap_or(0),
                failcnt: read_value(&file("failcnt"))?.unwrap_or(0),
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> LinuxDeviceCgroup {
        serde_json::from_str(json).expect("valid device rule JSON")
    }

    #[test]
    fn device_rules() {
        assert_eq!(
            device_rule(&rule(r#"{"allow":false,"access":"rwm"}"#)).unwrap(),
            "a"
        );
        assert_eq!(
            device_rule(&rule(r#"{"allow":true,"type":"a"}"#)).unwrap(),
            "a"
        );
        assert_eq!(
            device_rule(&rule(
                r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}"#
            ))
            .unwrap(),
            "c 1:3 rwm"
        );
        assert_eq!(
            device_rule(&rule(
                r#"{"allow":true,"type":"c","major":136,"access":"rw"}"#
            ))
            .unwrap(),
            "c 136:* rw"
        );
        assert_eq!(
            device_rule(&rule(r#"{"allow":true,"type":"b","access":"m"}"#)).unwrap(),
            "b *:* m"
        );
        assert_eq!(
            device_rule(&rule(r#"{"allow":true,"type":"c","major":-1,"minor":5}"#)).unwrap(),
            "c *:5 rwm"
        );
        assert_eq!(
            device_rule(&rule(
                r#"{"allow":true,"type":"u","major":4,"minor":0,"access":"r"}"#
            ))
            .unwrap(),
            "c 4:0 r"
        );
        assert!(matches!(
            device_rule(&rule(
                r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rwx"}"#
            )),
            Err(Error::InvalidValue { .. })
        ));
        assert!(device_rule(&rule(r#"{"allow":true,"type":"p"}"#)).is_err());
    }

    #[test]
    fn memory_value_checks() {
        assert!(check_memory_values(Some(100), Some(200), Some(50)).is_ok());
        assert!(check_memory_values(Some(100), Some(100), None).is_ok());
        assert!(check_memory_values(Some(100), Some(-1), None).is_ok());
        assert!(check_memory_values(Some(-1), Some(-1), None).is_ok());
        assert!(check_memory_values(None, None, None).is_ok());
        // swap (memory+swap) below the memory limit
        assert!(check_memory_values(Some(200), Some(100), None).is_err());
        // swap limit without memory limit
        assert!(check_memory_values(None, Some(100), None).is_err());
        assert!(check_memory_values(Some(-1), Some(100), None).is_err());
        assert!(check_memory_values(Some(-2), None, None).is_err());
    }
}
