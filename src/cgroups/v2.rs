//! cgroup v2 specifics: one directory, controllers enabled top-down through
//! cgroup.subtree_control, OCI (v1-style) values translated as runc/crun do.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::thread::sleep;
use std::time::Instant;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory};

use super::stats::{
    key_values, keyed_value, parse_error, read_value, Blkio, BlkioEntry, Cpu, Hugetlb, Memory,
    MemoryEntry, Pids,
};
use super::{
    check_page_size, invalid, nonzero, read, read_opt, v1::check_memory_values, write, Error,
    HierarchyDir, Result, POLL, WAIT,
};

/// Controllers `create` enables for the container (when available).
const WANTED: [&str; 7] = ["cpuset", "cpu", "io", "memory", "pids", "hugetlb", "rdma"];

/// The controllers listed in `<dir>/cgroup.controllers`.
pub(super) fn controllers(dir: &Path) -> Result<BTreeSet<String>> {
    Ok(read(&dir.join("cgroup.controllers"))?
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

/// Does `dir` hold processes while not being the root cgroup (which alone
/// has no cgroup.type)?
fn populated_non_root(dir: &Path) -> Result<bool> {
    if !dir.join("cgroup.type").exists() {
        return Ok(false);
    }
    Ok(read_opt(&dir.join("cgroup.procs"))?.is_some_and(|p| !p.trim().is_empty()))
}

/// Enable the wanted controllers in cgroup.subtree_control of every ancestor
/// of the container dir, from the mount root down. Only missing ones are
/// written. A refusal in a dir that existed before is skipped: the
/// controller then just is not available and `apply` names it if the config
/// needs it. In dirs we created it is an error.
///
/// A pre-existing non-root cgroup that holds processes (e.g. the caller's
/// own, with an absolute cgroupsPath below it) is left alone: the kernel
/// refuses domain controllers there (EBUSY) but accepts the threaded ones
/// (cpu, cpuset, pids), which would turn it into a thread root, make the
/// container's cgroup "domain invalid" (joining it fails with EOPNOTSUPP)
/// and change a cgroup that is not ours.
pub(super) fn enable_controllers(h: &HierarchyDir) -> Result<()> {
    let rel = h.dir.strip_prefix(&h.mount).unwrap_or(Path::new(""));
    let mut cur = h.mount.clone();
    // What `cur` may enable: the root's cgroup.controllers; below the root,
    // the parent's cgroup.subtree_control (which is what the kernel shows as
    // the child's cgroup.controllers), so each level is read once.
    let mut avail = controllers(&cur)?;
    for c in rel.components() {
        let ctl = cur.join("cgroup.subtree_control");
        let mut enabled: BTreeSet<String> =
            read(&ctl)?.split_whitespace().map(str::to_string).collect();
        let missing: Vec<&str> = WANTED
            .iter()
            .copied()
            .filter(|w| avail.contains(*w) && !enabled.contains(*w))
            .collect();
        if !missing.is_empty() && (h.is_ours(&cur) || !populated_non_root(&cur)?) {
            for w in missing {
                match write(&ctl, &format!("+{w}")) {
                    Ok(()) => {
                        enabled.insert(w.to_string());
                    }
                    Err(_) if !h.is_ours(&cur) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        avail = enabled;
        cur.push(c);
    }
    Ok(())
}

fn unsupported(field: &str) -> Error {
    Error::Unsupported(format!(
        "linux.resources.{field} has no cgroup v2 equivalent; remove it from the configuration"
    ))
}

/// -1 -> "max", else the number.
fn limit_value(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// memory.swap.max from OCI (v1 semantics: swap = memory+swap) values,
/// already filtered by `nonzero` and checked by `check_memory_values`.
/// None: leave memory.swap.max alone.
pub(super) fn swap_max(swap: Option<i64>, limit: Option<i64>) -> Option<String> {
    match (swap, limit) {
        // Unlimited memory, swap not given: both unlimited (as runc).
        (None, Some(-1)) => Some("max".to_string()),
        (None, _) => None,
        (Some(-1), _) => Some("max".to_string()),
        (Some(s), Some(l)) if l >= 0 => Some((s - l).to_string()),
        // Rejected by check_memory_values.
        (Some(_), _) => None,
    }
}

pub(super) fn set_memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    let limit = nonzero(m.limit());
    let swap = nonzero(m.swap());
    let reservation = nonzero(m.reservation());
    check_memory_values(limit, swap, reservation)?;
    if m.swappiness().is_some() {
        return Err(unsupported("memory.swappiness"));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(unsupported("memory.disableOOMKiller"));
    }
    if nonzero(m.kernel()).is_some() {
        return Err(unsupported("memory.kernel"));
    }
    if nonzero(m.kernel_tcp()).is_some() {
        return Err(unsupported("memory.kernelTCP"));
    }
    if let Some(v) = swap_max(swap, limit) {
        let f = dir.join("memory.swap.max");
        // Without swap accounting the file is missing; only an implied
        // "unlimited" may then be skipped.
        if swap.is_some() || f.exists() {
            write(&f, &v)?;
        }
    }
    if let Some(l) = limit {
        write(&dir.join("memory.max"), &limit_value(l))?;
    }
    if let Some(r) = reservation {
        write(&dir.join("memory.low"), &limit_value(r))?;
    }
    Ok(())
}

/// cpu.shares (2..262144) -> cpu.weight (1..10000), crun's formula.
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// cpu.max from quota/period; `current` is the present cpu.max content,
/// needed (to keep its quota) when only the period is set.
pub(super) fn cpu_max(quota: Option<i64>, period: Option<u64>, current: &str) -> Option<String> {
    let quota = match (quota, period) {
        (None, None) => return None,
        (Some(q), _) => limit_value(q),
        (None, Some(_)) => current
            .split_whitespace()
            .next()
            .unwrap_or("max")
            .to_string(),
    };
    Some(match period {
        Some(p) => format!("{quota} {p}"),
        None => quota,
    })
}

pub(super) fn set_cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if nonzero(c.realtime_runtime()).is_some() {
        return Err(unsupported("cpu.realtimeRuntime"));
    }
    if nonzero(c.realtime_period()).is_some() {
        return Err(unsupported("cpu.realtimePeriod"));
    }
    if let Some(s) = nonzero(c.shares()) {
        write(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
    }
    let quota = nonzero(c.quota());
    let period = nonzero(c.period());
    let max_file = dir.join("cpu.max");
    let current = if quota.is_none() && period.is_some() {
        read(&max_file)?
    } else {
        String::new()
    };
    if let Some(v) = cpu_max(quota, period, &current) {
        write(&max_file, &v)?;
    }
    if let Some(b) = c.burst() {
        write(&dir.join("cpu.max.burst"), &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        write(&dir.join("cpu.idle"), &i.to_string())?;
    }
    Ok(())
}

/// blkio.weight (10..1000) -> io.weight (1..10000), as runc.
pub(super) fn blkio_weight_to_io_weight(w: u16) -> Result<u64> {
    if !(10..=1000).contains(&w) {
        return Err(invalid("blockIO.weight", w, "must be 10..=1000"));
    }
    Ok(1 + (u64::from(w) - 10) * 9999 / 990)
}

pub(super) fn set_io(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    if nonzero(b.leaf_weight()).is_some()
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.leaf_weight().is_some())
    {
        return Err(unsupported("blockIO.leafWeight"));
    }
    // Like runc: BFQ's io.bfq.weight takes the blkio value as is; otherwise
    // io.weight with the converted value.
    let bfq = dir.join("io.bfq.weight");
    let use_bfq = bfq.exists();
    if let Some(w) = nonzero(b.weight()) {
        if use_bfq {
            write(&bfq, &w.to_string())?;
        } else {
            write(
                &dir.join("io.weight"),
                &blkio_weight_to_io_weight(w)?.to_string(),
            )?;
        }
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            if use_bfq {
                write(&bfq, &format!("{}:{} {}", d.major(), d.minor(), w))?;
            } else {
                let v = blkio_weight_to_io_weight(w)?;
                write(
                    &dir.join("io.weight"),
                    &format!("{}:{} {}", d.major(), d.minor(), v),
                )?;
            }
        }
    }
    for (key, list) in [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ] {
        for t in list.iter().flatten() {
            write(
                &dir.join("io.max"),
                &io_max_line(key, t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

/// One io.max line; rate 0 (v1: "no limit") becomes "max".
pub(super) fn io_max_line(key: &str, major: i64, minor: i64, rate: u64) -> String {
    if rate == 0 {
        format!("{major}:{minor} {key}=max")
    } else {
        format!("{major}:{minor} {key}={rate}")
    }
}

pub(super) fn set_hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for l in limits {
        check_page_size(l.page_size())?;
    }
    for l in limits {
        let size = l.page_size();
        let v = limit_value(l.limit());
        write(&dir.join(format!("hugetlb.{size}.max")), &v)?;
        let rsvd = dir.join(format!("hugetlb.{size}.rsvd.max"));
        if rsvd.exists() {
            write(&rsvd, &v)?;
        }
    }
    Ok(())
}

/// Write `unified` entries as given (sorted by key).
pub(super) fn set_unified(
    dir: &Path,
    u: &HashMap<String, String>,
    avail: Option<&BTreeSet<String>>,
) -> Result<()> {
    let mut keys: Vec<&String> = u.keys().collect();
    keys.sort();
    for k in &keys {
        if k.is_empty() || k.contains('/') || k.starts_with('.') || !k.contains('.') {
            return Err(invalid(
                "unified",
                format!("{k:?}"),
                "keys must be cgroup v2 file names such as \"memory.high\"",
            ));
        }
    }
    for k in keys {
        let f = dir.join(k);
        if !f.exists() {
            let controller = k.split('.').next().unwrap_or("");
            if controller != "cgroup" && avail.is_some_and(|a| !a.contains(controller)) {
                return Err(Error::ControllerMissing {
                    controller: controller.to_string(),
                    reason: format!(
                        "needed for linux.resources.unified[{k:?}] but not in {}",
                        dir.join("cgroup.controllers").display()
                    ),
                });
            }
        }
        write(&f, &u[k])?;
    }
    Ok(())
}

/// "frozen" from cgroup.events; None if the cgroup does not exist.
fn events_frozen(dir: &Path) -> Result<Option<bool>> {
    let f = dir.join("cgroup.events");
    let Some(text) = read_opt(&f)? else {
        return Ok(None);
    };
    Ok(Some(text.lines().any(|l| l.trim() == "frozen 1")))
}

fn set_freeze(dir: &Path, frozen: bool) -> Result<()> {
    let f = dir.join("cgroup.freeze");
    write(&f, if frozen { "1" } else { "0" })?;
    let deadline = Instant::now() + WAIT;
    loop {
        if events_frozen(dir)? == Some(frozen) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if frozen {
                let _ = write(&f, "0");
            }
            return Err(Error::Timeout {
                what: format!(
                    "cgroup.events to report \"frozen {}\"{}",
                    u8::from(frozen),
                    if frozen { " (thawed again)" } else { "" }
                ),
                path: dir.join("cgroup.events"),
            });
        }
        sleep(POLL);
    }
}

pub(super) fn freeze(dir: &Path) -> Result<()> {
    set_freeze(dir, true)
}

pub(super) fn thaw(dir: &Path) -> Result<()> {
    set_freeze(dir, false)
}

pub(super) fn is_frozen(dir: &Path) -> Result<bool> {
    Ok(events_frozen(dir)? == Some(true))
}

// ---------------------------------------------------------------------------
// Statistics (`mica events`), as runc 1.1's cgroup v2 manager reads them
// ---------------------------------------------------------------------------

/// cpu.stat: usage (usage_usec, user_usec, system_usec) and throttling
/// (nr_periods, nr_throttled, throttled_usec), microseconds made
/// nanoseconds. Present without the cpu controller (usage only).
pub(super) fn cpu_stats(dir: &Path) -> Result<Cpu> {
    let f = dir.join("cpu.stat");
    let Some(text) = read_opt(&f)? else {
        return Ok(Cpu::default());
    };
    parse_cpu_stat(&text).map_err(|d| parse_error(&f, d))
}

pub(super) fn parse_cpu_stat(text: &str) -> std::result::Result<Cpu, String> {
    let mut c = Cpu::default();
    for (k, v) in key_values(text)? {
        let ns = v.saturating_mul(1000);
        match k {
            "usage_usec" => c.usage.total = ns,
            "user_usec" => c.usage.user = ns,
            "system_usec" => c.usage.kernel = ns,
            "nr_periods" => c.throttling.periods = v,
            "nr_throttled" => c.throttling.throttled_periods = v,
            "throttled_usec" => c.throttling.throttled_time = ns,
            _ => {}
        }
    }
    Ok(c)
}

/// memory.current / .max / .peak, memory.swap.*, memory.stat. Nothing
/// without memory.stat (the memory controller is not enabled).
pub(super) fn memory_stats(dir: &Path, m: &mut Memory) -> Result<()> {
    if !super::stats::memory_raw(dir, "file", m)? {
        return Ok(());
    }
    let entry = |prefix: &str| -> Result<MemoryEntry> {
        let Some(usage) = read_value(&dir.join(format!("{prefix}.current")))? else {
            return Ok(MemoryEntry::default());
        };
        Ok(MemoryEntry {
            usage,
            limit: read_value(&dir.join(format!("{prefix}.max")))?.unwrap_or(0),
            // memory.peak since Linux 5.19, memory.swap.peak since 6.5.
            max: read_value(&dir.join(format!("{prefix}.peak")))?.unwrap_or(0),
            failcnt: 0,
        })
    };
    m.usage = entry("memory")?;
    m.swap = swap_entry(&m.usage, &entry("memory.swap")?);
    Ok(())
}

/// v1 reports swap as memory+swap; runc reports v2's that way too: the
/// usages added, the limits added unless swap is unlimited, no peak.
pub(super) fn swap_entry(memory: &MemoryEntry, swap_only: &MemoryEntry) -> MemoryEntry {
    MemoryEntry {
        usage: swap_only.usage.saturating_add(memory.usage),
        limit: if swap_only.limit == u64::MAX {
            u64::MAX
        } else {
            swap_only.limit.saturating_add(memory.limit)
        },
        max: 0,
        failcnt: swap_only.failcnt,
    }
}

/// pids.current / pids.max; without the pids controller the processes in
/// cgroup.procs are counted, with no limit, as runc does.
pub(super) fn pids_stats(dir: &Path, p: &mut Pids) -> Result<()> {
    if dir.join("pids.current").exists() {
        return super::stats::pids_stats(dir, p);
    }
    if let Some(procs) = read_opt(&dir.join("cgroup.procs"))? {
        p.current = procs.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        p.limit = 0;
    }
    Ok(())
}

/// io.stat: rbytes/wbytes as v1's io_service_bytes, rios/wios as its
/// io_serviced ("Read"/"Write"), per device, in the file's order.
pub(super) fn io_stats(dir: &Path, b: &mut Blkio) -> Result<()> {
    let f = dir.join("io.stat");
    if let Some(text) = read_opt(&f)? {
        *b = parse_io_stat(&text).map_err(|d| parse_error(&f, d))?;
    }
    Ok(())
}

pub(super) fn parse_io_stat(text: &str) -> std::result::Result<Blkio, String> {
    let mut b = Blkio::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("not a number: {s:?} in {line:?}"))
        };
        let (major, minor) = (num(major)?, num(minor)?);
        for item in fields {
            let Some((key, value)) = item.split_once('=') else {
                continue;
            };
            let (list, op) = match key {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                // dbytes, dios, cost.*: nothing in v1 to map them to.
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value: num(value)?,
            });
        }
    }
    Ok(b)
}

/// hugetlb.<size>.rsvd.current (else .current) as the usage and the "max"
/// count of hugetlb.<size>.events as failcnt, for each size whose files the
/// cgroup has. (runc 1.1 looks for a .rsvd.events, which the kernel does
/// not have, and then reports none.)
pub(super) fn hugetlb_stats(
    dir: &Path,
    sizes: &[String],
    out: &mut std::collections::BTreeMap<String, Hugetlb>,
) -> Result<()> {
    for size in sizes {
        let usage = match read_value(&dir.join(format!("hugetlb.{size}.rsvd.current")))? {
            Some(v) => v,
            None => match read_value(&dir.join(format!("hugetlb.{size}.current")))? {
                Some(v) => v,
                None => continue,
            },
        };
        let failcnt = keyed_value(&dir.join(format!("hugetlb.{size}.events")), "max")?;
        out.insert(
            size.clone(),
            Hugetlb {
                usage,
                max: 0,
                failcnt: failcnt.unwrap_or(0),
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_to_weight_matches_crun() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(262_144), 10_000);
        // clamped to the v1 range
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn blkio_weight_conversion() {
        assert_eq!(blkio_weight_to_io_weight(10).unwrap(), 1);
        assert_eq!(blkio_weight_to_io_weight(500).unwrap(), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000).unwrap(), 10_000);
        assert!(blkio_weight_to_io_weight(5).is_err());
        assert!(blkio_weight_to_io_weight(1001).is_err());
    }

    #[test]
    fn swap_translation() {
        // memory+swap 300, memory 100 -> 200 of swap
        assert_eq!(swap_max(Some(300), Some(100)).as_deref(), Some("200"));
        // equal: no swap
        assert_eq!(swap_max(Some(100), Some(100)).as_deref(), Some("0"));
        assert_eq!(swap_max(Some(-1), Some(100)).as_deref(), Some("max"));
        assert_eq!(swap_max(None, Some(-1)).as_deref(), Some("max"));
        assert_eq!(swap_max(None, Some(100)), None);
        assert_eq!(swap_max(None, None), None);
    }

    #[test]
    fn cpu_max_values() {
        assert_eq!(cpu_max(None, None, ""), None);
        assert_eq!(
            cpu_max(Some(50_000), Some(100_000), "").as_deref(),
            Some("50000 100000")
        );
        assert_eq!(cpu_max(Some(-1), None, "").as_deref(), Some("max"));
        assert_eq!(cpu_max(Some(20_000), None, "").as_deref(), Some("20000"));
        assert_eq!(
            cpu_max(None, Some(200_000), "30000 100000\n").as_deref(),
            Some("30000 200000")
        );
        assert_eq!(
            cpu_max(None, Some(200_000), "max 100000\n").as_deref(),
            Some("max 200000")
        );
    }

    #[test]
    fn cpu_stat_is_read_in_nanoseconds() {
        let c = parse_cpu_stat(
            "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n\
             core_sched.force_idle_usec 0\nnr_periods 10\nnr_throttled 2\n\
             throttled_usec 3456\nnr_bursts 0\nburst_usec 0\n",
        )
        .unwrap();
        assert_eq!(
            (c.usage.total, c.usage.user, c.usage.kernel),
            (1_234_567_000, 1_000_000_000, 234_567_000)
        );
        assert!(c.usage.percpu.is_empty());
        assert_eq!(
            (
                c.throttling.periods,
                c.throttling.throttled_periods,
                c.throttling.throttled_time
            ),
            (10, 2, 3_456_000)
        );
        // Without the cpu controller: usage only.
        let c = parse_cpu_stat("usage_usec 5\nuser_usec 3\nsystem_usec 2\n").unwrap();
        assert_eq!((c.usage.total, c.throttling.periods), (5000, 0));
        assert!(parse_cpu_stat("usage_usec five\n").is_err());
    }

    #[test]
    fn io_stat_maps_to_v1_lists() {
        let b = parse_io_stat(
            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n\
             253:1 rbytes=0 wbytes=512 rios=0 wios=1 dbytes=7 dios=1\n",
        )
        .unwrap();
        let e = |major, minor, op: &str, value| BlkioEntry {
            major,
            minor,
            op: op.into(),
            value,
        };
        assert_eq!(
            b.io_service_bytes_recursive,
            [
                e(8, 0, "Read", 4096),
                e(8, 0, "Write", 8192),
                e(253, 1, "Read", 0),
                e(253, 1, "Write", 512)
            ]
        );
        assert_eq!(
            b.io_serviced_recursive,
            [
                e(8, 0, "Read", 1),
                e(8, 0, "Write", 2),
                e(253, 1, "Read", 0),
                e(253, 1, "Write", 1)
            ]
        );
        assert!(b.sectors_recursive.is_empty() && b.io_queued_recursive.is_empty());
        assert_eq!(parse_io_stat("").unwrap(), Blkio::default());
        assert!(parse_io_stat("8:x rbytes=1\n").is_err());
        assert!(parse_io_stat("8:0 rbytes=lots\n").is_err());
    }

    #[test]
    fn swap_is_reported_with_memory_as_v1_does() {
        let mem = MemoryEntry {
            limit: 64 << 20,
            usage: 3 << 20,
            max: 4 << 20,
            failcnt: 0,
        };
        let swap_only = MemoryEntry {
            limit: 32 << 20,
            usage: 1 << 20,
            max: 2 << 20,
            failcnt: 0,
        };
        assert_eq!(
            swap_entry(&mem, &swap_only),
            MemoryEntry {
                limit: 96 << 20,
                usage: 4 << 20,
                max: 0,
                failcnt: 0
            }
        );
        // Unlimited swap stays unlimited; no swap accounting (all zero)
        // reports the memory alone.
        let unlimited = MemoryEntry {
            limit: u64::MAX,
            ..MemoryEntry::default()
        };
        assert_eq!(swap_entry(&mem, &unlimited).limit, u64::MAX);
        let none = swap_entry(&mem, &MemoryEntry::default());
        assert_eq!((none.limit, none.usage), (64 << 20, 3 << 20));
        // Unlimited memory with a swap limit does not wrap around.
        let max_mem = MemoryEntry {
            limit: u64::MAX,
            ..MemoryEntry::default()
        };
        assert_eq!(swap_entry(&max_mem, &swap_only).limit, u64::MAX);
    }

    #[test]
    fn io_max_lines() {
        assert_eq!(io_max_line("rbps", 8, 0, 1_048_576), "8:0 rbps=1048576");
        assert_eq!(io_max_line("wiops", 8, 16, 0), "8:16 wiops=max");
    }
}
