//! A container's cgroup statistics, for `mica events`.
//!
//! [`Stats`] is the `data` of runc 1.1's stats event (its `types.Stats`,
//! `types/events.go`): the same JSON names, and the same fields left out
//! when zero or empty (Go's `omitempty`, which never leaves out a
//! struct-typed field, so `cpu.usage`, `memory.usage` ... are always there,
//! as in runc 1.1's output). Each part is read from the hierarchy that has the
//! controller (a v1 one, else cgroup2), as `apply` routes them; a controller
//! or file the host does not have leaves its part at zero, which drops what
//! runc drops. Only a file that exists and cannot be read or parsed is an
//! error. The v1 readers are in `v1.rs`, the v2 ones in `v2.rs`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{read_opt, v1, v2, Cgroup, Error, Result, Target};

/// Where the host lists its huge page sizes (`hugepages-2048kB`, ...).
const HUGEPAGES: &str = "/sys/kernel/mm/hugepages";

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    /// Page size ("2MB", "1GB") -> usage.
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Always `{}`: mica refuses `linux.intelRdt`.
    pub intel_rdt: IntelRdt,
    /// Always `null`, as runc 1.1 has it for a container without veth
    /// interfaces in its config (mica makes none).
    pub network_interfaces: (),
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// v1 only (runc 1.1 reads no cpuset statistics on cgroup v2).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

/// Bytes; "max" (v2) is `u64::MAX`, v1's "unlimited" its page-rounded
/// i64::MAX, both as runc reports them.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// Memory plus swap (v1's memsw; on v2 the sum, as runc reports it).
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat as it is.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0: no limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    /// runc's name for it.
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct IntelRdt {}

/// memory.stat into `raw`, and `cache` from its `cache_key` (v1 "cache",
/// v2 "file"); false when the file is missing (no memory controller).
pub(super) fn memory_raw(dir: &Path, cache_key: &str, m: &mut Memory) -> Result<bool> {
    let Some(raw) = read_key_values(&dir.join("memory.stat"))? else {
        return Ok(false);
    };
    m.raw = raw.into_iter().collect();
    m.cache = m.raw.get(cache_key).copied().unwrap_or(0);
    Ok(true)
}

impl Cgroup {
    /// The container's statistics, each controller from the hierarchy that
    /// has it (see the module documentation).
    pub fn stats(&self) -> Result<Stats> {
        self.stats_with(&hugepage_sizes())
    }

    /// `stats` for the given huge page sizes ("2MB", ...).
    pub(super) fn stats_with(&self, sizes: &[String]) -> Result<Stats> {
        self.check()?;
        let mut s = Stats::default();
        let v2 = self.v2.as_ref().map(|h| h.dir.as_path());

        // cpu: v1 splits it into cpuacct (usage) and cpu (throttling);
        // cgroup2's cpu.stat has both (its usage part even without the cpu
        // controller).
        let cpuacct = self.v1_with("cpuacct");
        let cpu = self.v1_with("cpu");
        if let Some(h) = cpuacct {
            v1::cpuacct_stats(&h.dir, &mut s.cpu.usage)?;
        }
        if let Some(h) = cpu {
            v1::cpu_throttling(&h.dir, &mut s.cpu.throttling)?;
        }
        if let (Some(d), true) = (v2, cpuacct.is_none() || cpu.is_none()) {
            let c = v2::cpu_stats(d)?;
            if cpuacct.is_none() {
                s.cpu.usage = c.usage;
            }
            if cpu.is_none() {
                s.cpu.throttling = c.throttling;
            }
        }
        if let Some(h) = self.v1_with("cpuset") {
            v1::cpuset_stats(&h.dir, &mut s.cpuset)?;
        }
        match self.files_of("memory") {
            Some(Target::V1(d)) => v1::memory_stats(d, &mut s.memory)?,
            Some(Target::V2(d)) => v2::memory_stats(d, &mut s.memory)?,
            None => {}
        }
        match self.files_of("pids") {
            Some(Target::V1(d)) => pids_stats(d, &mut s.pids)?,
            Some(Target::V2(d)) => v2::pids_stats(d, &mut s.pids)?,
            None => {}
        }
        match self.files_of("blkio") {
            Some(Target::V1(d)) => v1::blkio_stats(d, &mut s.blkio)?,
            Some(Target::V2(d)) => v2::io_stats(d, &mut s.blkio)?,
            None => {}
        }
        match self.files_of("hugetlb") {
            Some(Target::V1(d)) => v1::hugetlb_stats(d, sizes, &mut s.hugetlb)?,
            Some(Target::V2(d)) => v2::hugetlb_stats(d, sizes, &mut s.hugetlb)?,
            None => {}
        }
        Ok(s)
    }

    /// How many processes of the container the OOM killer has killed so
    /// far: v1 `memory.oom_control`'s `oom_kill` (kernel >= 4.13), v2
    /// `memory.events`' `oom_kill`. None when the host does not show it.
    pub fn oom_kills(&self) -> Result<Option<u64>> {
        self.check()?;
        match self.files_of("memory") {
            Some(Target::V1(d)) => keyed_value(&d.join("memory.oom_control"), "oom_kill"),
            Some(Target::V2(d)) => keyed_value(&d.join("memory.events"), "oom_kill"),
            None => Ok(None),
        }
    }
}

/// pids.current and pids.max (same files on v1 and v2); "max" is limit 0,
/// as runc has it.
pub(super) fn pids_stats(dir: &Path, p: &mut Pids) -> Result<()> {
    let Some(current) = read_value(&dir.join("pids.current"))? else {
        return Ok(());
    };
    p.current = current;
    p.limit = match read_value(&dir.join("pids.max"))? {
        Some(u64::MAX) | None => 0,
        Some(v) => v,
    };
    Ok(())
}

/// The host's huge page sizes as the hugetlb files name them, from
/// /sys/kernel/mm/hugepages (none when it is missing).
pub(super) fn hugepage_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(HUGEPAGES) else {
        return Vec::new();
    };
    let mut sizes: Vec<String> = rd
        .flatten()
        .filter_map(|e| page_size_name(&e.file_name().to_string_lossy()))
        .collect();
    sizes.sort();
    sizes
}

/// "hugepages-2048kB" -> "2MB", "hugepages-1048576kB" -> "1GB", "hugepages-64kB" -> "64KB".
pub(super) fn page_size_name(file: &str) -> Option<String> {
    let kb: u64 = file
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    Some(if kb >= 1 << 20 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    })
}

// ---------------------------------------------------------------------------
// Parsing helpers shared by the v1 and v2 readers
// ---------------------------------------------------------------------------

/// A cgroup number: "max" is `u64::MAX`, a negative number (some memory
/// counters, through kernel bugs) is 0, as runc reads them.
pub(super) fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    if let Ok(v) = s.parse::<u64>() {
        return Some(v);
    }
    match s.strip_prefix('-') {
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => Some(0),
        _ => None,
    }
}

/// "key value" lines (cpu.stat, memory.stat, memory.events, ...); an
/// empty line is skipped, any other line must be one key and one number.
pub(super) fn key_values(text: &str) -> std::result::Result<Vec<(&str, u64)>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.split_whitespace();
        match (f.next(), f.next().and_then(parse_u64), f.next()) {
            (Some(k), Some(v), None) => out.push((k, v)),
            _ => return Err(format!("not \"key value\": {line:?}")),
        }
    }
    Ok(out)
}

pub(super) fn parse_error(path: &Path, detail: String) -> Error {
    Error::Parse {
        what: path.display().to_string(),
        detail,
    }
}

/// A file of one number; None when it does not exist.
pub(super) fn read_value(path: &Path) -> Result<Option<u64>> {
    let Some(text) = read_opt(path)? else {
        return Ok(None);
    };
    parse_u64(&text)
        .map(Some)
        .ok_or_else(|| parse_error(path, format!("not a number: {:?}", text.trim())))
}

/// A "key value" file as pairs; None when it does not exist.
pub(super) fn read_key_values(path: &Path) -> Result<Option<Vec<(String, u64)>>> {
    let Some(text) = read_opt(path)? else {
        return Ok(None);
    };
    let kv = key_values(&text).map_err(|d| parse_error(path, d))?;
    Ok(Some(
        kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    ))
}

/// One key of a "key value" file; None when the file or the key is missing.
pub(super) fn keyed_value(path: &Path, key: &str) -> Result<Option<u64>> {
    Ok(
        read_key_values(path)?
            .and_then(|kv| kv.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stats_have_runc_1_1s_shape() {
        // What runc 1.1 prints for a cgroup whose files show nothing.
        let v = serde_json::to_value(Stats::default()).unwrap();
        let want = serde_json::json!({
            "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
            "cpuset": {"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
                "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
                "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0},
            "memory": {"usage": {"limit": 0, "failcnt": 0}, "swap": {"limit": 0, "failcnt": 0},
                "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0}},
            "pids": {},
            "blkio": {},
            "hugetlb": {},
            "intel_rdt": {},
            "network_interfaces": null
        });
        assert_eq!(v, want);
    }

    #[test]
    fn json_names_are_runcs() {
        let mut s = Stats::default();
        s.cpu.usage.total = 5;
        s.cpu.usage.percpu = vec![2, 3];
        s.cpu.usage.percpu_kernel = vec![1, 1];
        s.cpu.usage.percpu_user = vec![1, 2];
        s.cpu.throttling = Throttling {
            periods: 1,
            throttled_periods: 2,
            throttled_time: 3,
        };
        s.memory.cache = 7;
        s.memory.raw.insert("file".into(), 7);
        s.memory.kernel_tcp.usage = 1;
        s.pids = Pids {
            current: 1,
            limit: 10,
        };
        let e = BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 4,
        };
        s.blkio.io_service_bytes_recursive = vec![e.clone()];
        s.blkio.io_queued_recursive = vec![e];
        s.hugetlb.insert(
            "2MB".into(),
            Hugetlb {
                usage: 0,
                max: 0,
                failcnt: 0,
            },
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["cpu"],
            serde_json::json!({
                "usage": {"total": 5, "percpu": [2, 3], "percpu_kernel": [1, 1],
                    "percpu_user": [1, 2], "kernel": 0, "user": 0},
                "throttling": {"periods": 1, "throttledPeriods": 2, "throttledTime": 3}
            })
        );
        assert_eq!(v["memory"]["cache"], 7);
        assert_eq!(v["memory"]["raw"], serde_json::json!({"file": 7}));
        assert_eq!(
            v["memory"]["kernelTCP"],
            serde_json::json!({"limit": 0, "usage": 1, "failcnt": 0})
        );
        assert_eq!(v["pids"], serde_json::json!({"current": 1, "limit": 10}));
        let entry = serde_json::json!([{"major": 8, "op": "Read", "value": 4}]);
        assert_eq!(
            v["blkio"],
            serde_json::json!({"ioServiceBytesRecursive": entry, "ioQueueRecursive": entry})
        );
        assert_eq!(v["hugetlb"], serde_json::json!({"2MB": {"failcnt": 0}}));
    }

    #[test]
    fn numbers_and_key_value_lines() {
        assert_eq!(parse_u64("42\n"), Some(42));
        assert_eq!(parse_u64("max"), Some(u64::MAX));
        assert_eq!(parse_u64("-4096"), Some(0));
        assert_eq!(parse_u64("-"), None);
        assert_eq!(parse_u64("12a"), None);
        assert_eq!(
            key_values("usage_usec 10\nuser_usec 4\n\n").unwrap(),
            [("usage_usec", 10), ("user_usec", 4)]
        );
        assert!(key_values("usage_usec\n").is_err());
        assert!(key_values("a 1 2\n").is_err());
        assert!(key_values("a b\n").is_err());
    }

    #[test]
    fn hugepage_size_names() {
        assert_eq!(page_size_name("hugepages-2048kB").as_deref(), Some("2MB"));
        assert_eq!(
            page_size_name("hugepages-1048576kB").as_deref(),
            Some("1GB")
        );
        assert_eq!(page_size_name("hugepages-64kB").as_deref(), Some("64KB"));
        assert_eq!(page_size_name("hugepages-2048").as_deref(), None);
        assert_eq!(page_size_name("other-2048kB").as_deref(), None);
    }
}
