//! cgroup v2 specifics: one directory, controllers enabled top-down through
//! cgroup.subtree_control, OCI (v1-style) values translated as runc/crun do.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::thread::sleep;
use std::time::Instant;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory};

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
    fn io_max_lines() {
        assert_eq!(io_max_line("rbps", 8, 0, 1_048_576), "8:0 rbps=1048576");
        assert_eq!(io_max_line("wiops", 8, 16, 0), "8:16 wiops=max");
    }
}
