//! Tests: pure parsing/resolution on given text, then (as root) real cgroups
//! created only below the test process's own cgroups.

use super::*;

const HYBRID_MOUNTINFO: &str = "\
24 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

const HYBRID_PROC: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/abc
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

const V2_MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

/// A container without cgroupns: v1 hierarchies bind-mounted from
/// /docker/abc, co-mounted controllers, xattr + release_agent options.
const V1_MOUNTINFO: &str = "\
100 99 0:50 / / rw - overlay overlay rw
110 100 0:60 / /sys/fs/cgroup rw - tmpfs tmpfs rw
111 110 0:61 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
112 110 0:62 /docker/abc /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
113 110 0:63 /docker/abc /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
114 110 0:64 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
115 110 0:64 / /mnt/my\\040memory rw - cgroup cgroup rw,memory
";

const V1_PROC: &str = "\
5:memory:/docker/abc/inner
4:name=systemd:/docker/abc
3:net_cls,net_prio:/docker/abc
2:cpu,cpuacct:/docker/abc
";

fn v1<'a>(cg: &'a Cgroup, controller: &str) -> &'a HierarchyDir {
    cg.v1_with(controller).expect("hierarchy present")
}

#[test]
fn layout_detection() {
    match parse_layout(HYBRID_MOUNTINFO).unwrap() {
        Layout::Hybrid {
            hierarchies,
            unified,
        } => {
            assert_eq!(hierarchies.len(), 9);
            assert_eq!(unified.mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
            assert!(hierarchies
                .iter()
                .any(|h| h.controllers == ["name=systemd"]));
        }
        l => panic!("expected hybrid, got {l:?}"),
    }
    assert_eq!(
        parse_layout(V2_MOUNTINFO).unwrap(),
        Layout::V2 {
            unified: V2Mount {
                mount_point: "/sys/fs/cgroup".into(),
                root: "/".into()
            }
        }
    );
    match parse_layout(V1_MOUNTINFO).unwrap() {
        Layout::V1 { hierarchies } => {
            let c: Vec<_> = hierarchies
                .iter()
                .map(|h| h.controllers.join(","))
                .collect();
            assert_eq!(
                c,
                ["cpu,cpuacct", "net_cls,net_prio", "name=systemd", "memory"]
            );
            // the memory hierarchy's root mount (with an escaped space) wins
            // over the bind mount of /docker/abc
            let mem = &hierarchies[3];
            assert_eq!(mem.root, "/");
            assert_eq!(mem.mount_point, PathBuf::from("/mnt/my memory"));
        }
        l => panic!("expected v1, got {l:?}"),
    }
    assert!(matches!(
        parse_layout("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        parse_layout("garbage line\n"),
        Err(Error::Parse { .. })
    ));
}

/// The hybrid host after a fresh tmpfs was mounted over /sys/fs/cgroup
/// with only the v1 hierarchies bound back (what `mica bench` gives crun):
/// the old mounts, cgroup2 among them, are still listed but hidden.
#[test]
fn hidden_mounts_are_skipped() {
    let covered = format!(
        "{HYBRID_MOUNTINFO}\
68 31 0:40 / /sys/fs/cgroup rw,relatime - tmpfs x rw,size=64k,mode=755
69 68 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
75 68 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"
    );
    match parse_layout(&covered).unwrap() {
        Layout::V1 { hierarchies } => {
            let c: Vec<_> = hierarchies
                .iter()
                .map(|h| h.controllers.join(","))
                .collect();
            assert_eq!(c, ["blkio", "memory"]);
        }
        l => panic!("expected v1 (cgroup2 is hidden), got {l:?}"),
    }
    // A mount stacked on a hierarchy's own mount point hides it; one over a
    // directory above (here /sys/fs) hides everything below it.
    let stacked = format!(
        "{HYBRID_MOUNTINFO}\
90 41 0:41 / /sys/fs/cgroup/unified rw - tmpfs x rw
"
    );
    assert!(matches!(parse_layout(&stacked).unwrap(), Layout::V1 { .. }));
    let above = format!(
        "{HYBRID_MOUNTINFO}\
91 23 0:42 / /sys/fs rw - tmpfs x rw
92 91 0:29 / /sys/fs/cgroup2 rw - cgroup2 cgroup2 rw
"
    );
    assert_eq!(
        parse_layout(&above).unwrap(),
        Layout::V2 {
            unified: V2Mount {
                mount_point: "/sys/fs/cgroup2".into(),
                root: "/".into()
            }
        }
    );
    // Mounts side by side under one parent hide nothing of each other.
    assert!(matches!(
        parse_layout(HYBRID_MOUNTINFO).unwrap(),
        Layout::Hybrid { ref hierarchies, .. } if hierarchies.len() == 9
    ));
}

#[test]
fn resolve_default_name_under_own_cgroup() {
    let cg = Cgroup::resolve_from(HYBRID_MOUNTINFO, HYBRID_PROC, None, "c1").unwrap();
    assert_eq!(cg.v1.len(), 9);
    let mem = v1(&cg, "memory");
    assert_eq!(
        mem.dir,
        PathBuf::from("/sys/fs/cgroup/memory/process_api/abc/mica-c1")
    );
    assert_eq!(mem.created_top.as_ref(), Some(&mem.dir));
    assert_eq!(
        v1(&cg, "cpu").dir,
        PathBuf::from("/sys/fs/cgroup/cpu/mica-c1")
    );
    assert_eq!(
        v1(&cg, "name=systemd").dir,
        PathBuf::from("/sys/fs/cgroup/systemd/mica-c1")
    );
    assert_eq!(
        cg.v2_dir(),
        Some(Path::new("/sys/fs/cgroup/unified/mica-c1"))
    );
    // empty cgroupsPath is the same as none
    let cg2 = Cgroup::resolve_from(HYBRID_MOUNTINFO, HYBRID_PROC, Some(""), "c1").unwrap();
    assert_eq!(cg, cg2);
}

#[test]
fn resolve_absolute_path() {
    let cg = Cgroup::resolve_from(
        HYBRID_MOUNTINFO,
        HYBRID_PROC,
        Some("/mica//./c1"),
        "ignored",
    )
    .unwrap();
    let cpu = v1(&cg, "cpu");
    assert_eq!(cpu.dir, PathBuf::from("/sys/fs/cgroup/cpu/mica/c1"));
    // absolute: not below the process's own memory cgroup
    let mem = v1(&cg, "memory");
    assert_eq!(mem.dir, PathBuf::from("/sys/fs/cgroup/memory/mica/c1"));
    let v2 = cg.v2.as_ref().unwrap();
    assert_eq!(v2.dir, PathBuf::from("/sys/fs/cgroup/unified/mica/c1"));
    // Until the directories are made, each claims only its own.
    for h in cg.all() {
        assert_eq!(h.created_top.as_ref(), Some(&h.dir));
    }
}

#[test]
fn resolve_relative_path() {
    let cg = Cgroup::resolve_from(HYBRID_MOUNTINFO, HYBRID_PROC, Some("group/c1"), "x").unwrap();
    let mem = v1(&cg, "memory");
    assert_eq!(
        mem.dir,
        PathBuf::from("/sys/fs/cgroup/memory/process_api/abc/group/c1")
    );
    assert_eq!(mem.created_top.as_ref(), Some(&mem.dir));
}

#[test]
fn resolve_pure_v2() {
    let proc = "0::/user.slice/user-0.slice/session-1.scope\n";
    let cg = Cgroup::resolve_from(V2_MOUNTINFO, proc, None, "c1").unwrap();
    assert!(cg.v1.is_empty());
    // relative: below the parent of the own cgroup (which has processes)
    assert_eq!(
        cg.v2_dir(),
        Some(Path::new("/sys/fs/cgroup/user.slice/user-0.slice/mica-c1"))
    );
    // in the root cgroup: below the root
    let cg = Cgroup::resolve_from(V2_MOUNTINFO, "0::/\n", Some("a"), "c1").unwrap();
    assert_eq!(cg.v2_dir(), Some(Path::new("/sys/fs/cgroup/a")));
    let cg = Cgroup::resolve_from(V2_MOUNTINFO, proc, Some("/mica/c1"), "c1").unwrap();
    let h = cg.v2.as_ref().unwrap();
    assert_eq!(h.dir, PathBuf::from("/sys/fs/cgroup/mica/c1"));
    assert_eq!(h.created_top.as_ref(), Some(&h.dir));
}

#[test]
fn resolve_pure_v1_in_container_without_cgroupns() {
    let cg = Cgroup::resolve_from(V1_MOUNTINFO, V1_PROC, None, "x").unwrap();
    assert!(cg.v2.is_none());
    assert!(cg.v2_dir().is_none());
    // mount root /docker/abc is stripped from the own cgroup path
    assert_eq!(
        v1(&cg, "cpu").dir,
        PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/mica-x")
    );
    assert_eq!(v1(&cg, "cpu").controllers, ["cpu", "cpuacct"]);
    assert_eq!(
        v1(&cg, "net_prio").dir,
        PathBuf::from("/sys/fs/cgroup/net_cls,net_prio/mica-x")
    );
    // the memory hierarchy is mounted from its root: full own path
    assert_eq!(
        v1(&cg, "memory").dir,
        PathBuf::from("/mnt/my memory/docker/abc/inner/mica-x")
    );
}

#[test]
fn resolve_rejects_bad_paths() {
    let r = |p: Option<&str>, id: &str| Cgroup::resolve_from(HYBRID_MOUNTINFO, HYBRID_PROC, p, id);
    for bad in ["../x", "/a/../b", "a/..", "/", ".", "//"] {
        assert!(
            matches!(r(Some(bad), "x"), Err(Error::InvalidPath { .. })),
            "{bad:?} accepted"
        );
    }
    match r(Some("system.slice:docker:abc"), "x") {
        Err(Error::InvalidPath { reason, .. }) => assert!(reason.contains("systemd")),
        other => panic!("systemd syntax accepted: {other:?}"),
    }
    for bad_id in ["", "..", "a/b"] {
        assert!(r(None, bad_id).is_err(), "id {bad_id:?} accepted");
    }
    // a process outside its cgroup namespace cannot use relative paths
    assert!(Cgroup::resolve_from(V2_MOUNTINFO, "0::/../../x\n", Some("a"), "x",).is_err());
}

#[test]
fn state_roundtrip_and_tamper_checks() {
    let cg = Cgroup::resolve_from(HYBRID_MOUNTINFO, HYBRID_PROC, None, "c1").unwrap();
    let json = serde_json::to_string(&cg).unwrap();
    let back: Cgroup = serde_json::from_str(&json).unwrap();
    assert_eq!(cg, back);
    assert!(cg.check().is_ok());

    let mut bad = cg.clone();
    bad.v1[0].dir = bad.v1[0].mount.clone();
    assert!(bad.check().is_err());
    let mut bad = cg.clone();
    bad.v1[0].dir = PathBuf::from("/etc/x");
    assert!(bad.check().is_err());
    let mut bad = cg.clone();
    bad.v1[0].dir = bad.v1[0].mount.join("a/../../etc");
    assert!(bad.check().is_err());
    let mut bad = cg.clone();
    bad.v1[0].created_top = Some(bad.v1[0].mount.clone());
    assert!(bad.check().is_err());
    let mut bad = cg;
    bad.v1[0].created_top = Some(PathBuf::from("/sys/fs/cgroup/other/x"));
    assert!(bad.check().is_err());
}

#[test]
fn small_helpers() {
    assert_eq!(pids_max(0), "max");
    assert_eq!(pids_max(-1), "max");
    assert_eq!(pids_max(64), "64");
    assert!(check_page_size("2MB").is_ok());
    assert!(check_page_size("1GB").is_ok());
    assert!(check_page_size("64KB").is_ok());
    assert!(check_page_size("2M").is_err());
    assert!(check_page_size("../x").is_err());
    assert!(check_page_size("MB").is_err());
    assert_eq!(unescape_mountinfo("/a\\040b\\134c"), "/a b\\c");
    assert_eq!(unescape_mountinfo("/trailing\\04"), "/trailing\\04");
    let rdma: std::collections::HashMap<String, oci_spec::runtime::LinuxRdma> =
        serde_json::from_str(r#"{"mlx5_1":{"hcaHandles":3,"hcaObjects":10000},"x":{}}"#).unwrap();
    assert_eq!(rdma_lines(&rdma), ["mlx5_1 hca_handle=3 hca_object=10000"]);
}

/// Each record saved while creating: its created_top, and whether that
/// directory existed when the record was saved.
type Seen = Vec<(Option<PathBuf>, bool)>;

/// Create `cg`'s v1 part; `hook` runs at each record (as another container
/// would, between a lookup and a mkdir) and may refuse it.
fn create_seen(
    cg: &mut Cgroup,
    mut hook: impl FnMut(usize) -> io::Result<()>,
) -> (Result<()>, Seen) {
    let mut seen = Seen::new();
    let made = cg.create_v1(&mut |cg| {
        let top = cg.v1[0].created_top.clone();
        seen.push((top.clone(), top.is_some_and(|t| t.exists())));
        hook(seen.len())
    });
    (made, seen)
}

#[test]
fn create_records_what_it_makes_before_making_it() {
    let h = FakeCgroupFs::new("mkdirs");
    fs::create_dir(h.0.join("shared")).unwrap();
    let m = &h.0;
    let ok = |_| Ok(());
    // The parent exists: one mkdir, the leaf is ours, the record made
    // before `create` (naming the leaf) stands.
    let mut cg = h.cgroup(&["shared", "c1"]);
    let (r, seen) = create_seen(&mut cg, ok);
    r.unwrap();
    assert_eq!(cg.v1[0].created_top, Some(m.join("shared/c1")));
    assert_eq!(seen, vec![]);
    // The leaf exists (another container's): joined, not ours, recorded so.
    let mut cg = h.cgroup(&["shared", "c1"]);
    let (r, seen) = create_seen(&mut cg, ok);
    r.unwrap();
    assert_eq!(cg.v1[0].created_top, None);
    assert_eq!(seen, vec![(None, false)]);
    // Parents missing: the topmost missing one is recorded before anything
    // is made, then made from there down.
    let mut cg = h.cgroup(&["new", "a", "c1"]);
    let (r, seen) = create_seen(&mut cg, ok);
    r.unwrap();
    assert_eq!(cg.v1[0].created_top, Some(m.join("new")));
    assert_eq!(seen, vec![(Some(m.join("new")), false)]);
    assert!(m.join("new/a/c1").is_dir());
    // A record that cannot be saved: nothing is made, nothing claimed.
    let mut cg = h.cgroup(&["other", "c1"]);
    let (r, seen) = create_seen(&mut cg, |_| Err(io::Error::other("disk full")));
    assert!(r.is_err());
    assert_eq!(seen, vec![(Some(m.join("other")), false)]);
    assert!(!m.join("other").exists());
    assert_eq!(cg.v1[0].created_top, None);
}

#[test]
fn create_looks_again_when_other_containers_race() {
    let h = FakeCgroupFs::new("race");
    fs::create_dir(h.0.join("shared")).unwrap();
    let m = &h.0;
    // What another container does between our first lookup and our mkdir.
    type Other = fn(&Path) -> io::Result<()>;
    let make_p: Other = |m| fs::create_dir(m.join("p"));
    let remove_shared: Other = |m| fs::remove_dir(m.join("shared"));
    // (path, the other container, the records saved, our topmost dir at the end)
    let cases = [
        // It makes the parent: that is theirs; only what we then make is ours.
        (&["p", "q", "c1"], make_p, ["p", "p/q"], "p/q"),
        // Its teardown removes the shared parent: looked up again, made, ours.
        (
            &["shared", "x", "c1"],
            remove_shared,
            ["shared/x", "shared"],
            "shared",
        ),
    ];
    for (comps, other, records, top) in cases {
        let mut cg = h.cgroup(comps);
        let (r, seen) = create_seen(&mut cg, |n| if n == 1 { other(m) } else { Ok(()) });
        r.unwrap();
        let want: Seen = records.iter().map(|r| (Some(m.join(r)), false)).collect();
        assert_eq!(seen, want, "{comps:?}");
        assert_eq!(cg.v1[0].created_top, Some(m.join(top)), "{comps:?}");
        assert!(cg.v1[0].dir.is_dir(), "{comps:?}");
    }
}

#[test]
fn a_failed_create_claims_only_what_it_made() {
    let h = FakeCgroupFs::new("undo");
    fs::create_dir(h.0.join("shared")).unwrap();
    // The second hierarchy's record is refused: the first made its dir and
    // says so, the second and third made nothing.
    let mut cg = Cgroup {
        v1: vec![
            h.dir_at(&["shared", "a"]),
            h.dir_at(&["gone", "b"]),
            h.dir_at(&["shared", "c"]),
        ],
        v2: None,
    };
    assert!(cg
        .create(&mut |_| Err(io::Error::other("disk full")))
        .is_err());
    let tops: Vec<_> = cg.v1.iter().map(|h| h.created_top.clone()).collect();
    assert_eq!(tops, vec![Some(h.0.join("shared/a")), None, None]);
    // Never created (a failure before `create`): nothing claimed, though
    // the record for a crash names the container's own dirs.
    let mut cg = h.cgroup(&["shared", "d"]);
    assert!(cg.v1[0].created_top.is_some());
    cg.forget_unsettled();
    assert_eq!(cg.v1[0].created_top, None);
}

// ---------------------------------------------------------------------------
// Statistics on fixed file contents (as the kernel writes them)
// ---------------------------------------------------------------------------

/// A directory of fake cgroup files, removed on drop.
struct FakeCgroupFs(PathBuf);

impl FakeCgroupFs {
    fn new(name: &str) -> FakeCgroupFs {
        let p = std::env::temp_dir().join(format!("mica-stats-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        FakeCgroupFs(p)
    }

    /// The container's dir at `comps` in a hierarchy mounted at `<tmp>`,
    /// nothing made yet (plain directories: creating only mkdirs).
    fn dir_at(&self, comps: &[&str]) -> HierarchyDir {
        let comps: Vec<String> = comps.iter().map(|c| c.to_string()).collect();
        HierarchyDir::new(vec![], &self.0, &[], &comps)
    }

    /// A cgroup of that one hierarchy.
    fn cgroup(&self, comps: &[&str]) -> Cgroup {
        Cgroup {
            v1: vec![self.dir_at(comps)],
            v2: None,
        }
    }

    /// A hierarchy mounted at `<tmp>/<mount>` with the container's dir
    /// `ctr` below it, holding `files`.
    fn hierarchy(&self, mount: &str, controllers: &[&str], files: &[(&str, &str)]) -> HierarchyDir {
        let mount = self.0.join(mount);
        let dir = mount.join("ctr");
        fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            fs::write(dir.join(name), text).unwrap();
        }
        HierarchyDir {
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            mount,
            dir,
            created_top: None,
            settled: true,
        }
    }
}

impl Drop for FakeCgroupFs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn sizes() -> Vec<String> {
    vec!["1GB".to_string(), "2MB".to_string()]
}

const V2_MEMORY_STAT: &str = "\
anon 1048576
file 2097152
kernel 131072
shmem 0
pgfault 321
workingset_refault_anon 0
";

#[test]
fn stats_of_a_pure_v2_cgroup() {
    let fake = FakeCgroupFs::new("v2");
    let v2 = fake.hierarchy(
        "unified",
        &[],
        &[
            ("cgroup.procs", "12\n34\n"),
            ("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 20\n"),
            ("memory.stat", V2_MEMORY_STAT),
            ("memory.current", "3276800\n"),
            ("memory.max", "67108864\n"),
            ("memory.peak", "4194304\n"),
            ("memory.swap.current", "4096\n"),
            ("memory.swap.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n"),
            ("pids.current", "2\n"),
            ("pids.max", "max\n"),
            ("io.stat", "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"),
            ("hugetlb.2MB.current", "2097152\n"),
            ("hugetlb.2MB.max", "4194304\n"),
            ("hugetlb.2MB.events", "max 3\n"),
        ],
    );
    let cg = Cgroup {
        v1: Vec::new(),
        v2: Some(v2),
    };
    let got = serde_json::to_value(cg.stats_with(&sizes()).unwrap()).unwrap();
    let want = serde_json::json!({
        "cpu": {
            "usage": {"total": 1_500_000, "kernel": 500_000, "user": 1_000_000},
            "throttling": {"periods": 4, "throttledPeriods": 1, "throttledTime": 20_000}
        },
        // runc 1.1 reads no cpuset statistics on v2.
        "cpuset": {"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
            "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
            "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0},
        "memory": {
            "cache": 2_097_152,
            "usage": {"limit": 67_108_864, "usage": 3_276_800, "max": 4_194_304, "failcnt": 0},
            "swap": {"limit": u64::MAX, "usage": 3_280_896, "failcnt": 0},
            "kernel": {"limit": 0, "failcnt": 0},
            "kernelTCP": {"limit": 0, "failcnt": 0},
            "raw": {"anon": 1_048_576, "file": 2_097_152, "kernel": 131_072, "pgfault": 321,
                "shmem": 0, "workingset_refault_anon": 0}
        },
        "pids": {"current": 2},
        "blkio": {
            "ioServiceBytesRecursive": [
                {"major": 8, "op": "Read", "value": 4096}, {"major": 8, "op": "Write"}
            ],
            "ioServicedRecursive": [
                {"major": 8, "op": "Read", "value": 1}, {"major": 8, "op": "Write"}
            ]
        },
        "hugetlb": {"2MB": {"usage": 2_097_152, "failcnt": 3}},
        "intel_rdt": {},
        "network_interfaces": null
    });
    assert_eq!(got, want, "{got:#}");
    assert_eq!(cg.oom_kills().unwrap(), Some(1));

    // A limit on pids, swap and reserved hugetlb pages.
    let d = cg.v2.as_ref().unwrap().dir.clone();
    fs::write(d.join("pids.max"), "42\n").unwrap();
    fs::write(d.join("memory.swap.max"), "33554432\n").unwrap();
    fs::write(d.join("hugetlb.2MB.rsvd.current"), "4194304\n").unwrap();
    let s = cg.stats_with(&sizes()).unwrap();
    assert_eq!((s.pids.current, s.pids.limit), (2, 42));
    assert_eq!(s.memory.swap.limit, 67_108_864 + 33_554_432);
    assert_eq!(s.hugetlb["2MB"].usage, 4_194_304);
    // No pids controller: the processes are counted, as runc does.
    fs::remove_file(d.join("pids.current")).unwrap();
    let s = cg.stats_with(&sizes()).unwrap();
    assert_eq!((s.pids.current, s.pids.limit), (2, 0));
    // A malformed file is an error naming it.
    fs::write(d.join("memory.current"), "lots\n").unwrap();
    let e = cg.stats_with(&sizes()).unwrap_err().to_string();
    assert!(e.contains("memory.current") && e.contains("lots"), "{e}");
}

#[test]
fn stats_of_a_v2_cgroup_without_controllers() {
    // Only the core files: cpu.stat's usage and the processes.
    let fake = FakeCgroupFs::new("v2-bare");
    let v2 = fake.hierarchy(
        "unified",
        &[],
        &[
            ("cgroup.procs", "7\n"),
            ("cpu.stat", "usage_usec 9\nuser_usec 4\nsystem_usec 5\n"),
        ],
    );
    let cg = Cgroup {
        v1: Vec::new(),
        v2: Some(v2),
    };
    let s = cg.stats_with(&sizes()).unwrap();
    let mut want = Stats::default();
    want.cpu.usage.total = 9000;
    want.cpu.usage.user = 4000;
    want.cpu.usage.kernel = 5000;
    want.pids.current = 1;
    assert_eq!(s, want);
    assert_eq!(cg.oom_kills().unwrap(), None);
    // A cgroup that is gone: nothing, no error.
    fs::remove_dir_all(&cg.v2.as_ref().unwrap().dir).unwrap();
    assert_eq!(cg.stats_with(&sizes()).unwrap(), Stats::default());
}

#[test]
fn stats_of_a_v1_cgroup() {
    let fake = FakeCgroupFs::new("v1");
    let cpu = fake.hierarchy(
        "cpu",
        &["cpu"],
        &[(
            "cpu.stat",
            "nr_periods 6\nnr_throttled 2\nthrottled_time 777\nnr_bursts 0\nburst_time 0\n",
        )],
    );
    let cpuacct = fake.hierarchy(
        "cpuacct",
        &["cpuacct"],
        &[
            ("cpuacct.usage", "4270669\n"),
            ("cpuacct.usage_percpu", "2153047 2117622 \n"),
            ("cpuacct.stat", "user 3\nsystem 1\n"),
            (
                "cpuacct.usage_all",
                "cpu user system\n0 100 200\n1 300 400\n",
            ),
        ],
    );
    let cpuset = fake.hierarchy(
        "cpuset",
        &["cpuset"],
        &[
            ("cpuset.cpus", "0-2,5\n"),
            ("cpuset.mems", "0\n"),
            ("cpuset.cpu_exclusive", "0\n"),
            ("cpuset.sched_load_balance", "1\n"),
            ("cpuset.sched_relax_domain_level", "-1\n"),
        ],
    );
    let memory = fake.hierarchy(
        "memory",
        &["memory"],
        &[
            (
                "memory.stat",
                "cache 1150976\nrss 49152\ntotal_cache 1150976\n",
            ),
            ("memory.usage_in_bytes", "1634304\n"),
            ("memory.max_usage_in_bytes", "1638400\n"),
            ("memory.failcnt", "0\n"),
            ("memory.limit_in_bytes", "67108864\n"),
            ("memory.memsw.usage_in_bytes", "1634304\n"),
            ("memory.memsw.max_usage_in_bytes", "1638400\n"),
            ("memory.memsw.failcnt", "0\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            // No kmem.limit_in_bytes (newer kernels), no kmem.tcp at all.
            ("memory.kmem.usage_in_bytes", "131072\n"),
            ("memory.kmem.max_usage_in_bytes", "131072\n"),
            ("memory.kmem.failcnt", "0\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
        ],
    );
    let pids = fake.hierarchy(
        "pids",
        &["pids"],
        &[("pids.current", "1\n"), ("pids.max", "42\n")],
    );
    let blkio = fake.hierarchy(
        "blkio",
        &["blkio"],
        &[
            // BFQ's files, counting nothing yet (the first one unparsable,
            // which runc takes as empty too): the throttling ones count.
            ("blkio.bfq.io_serviced_recursive", "8:0\n"),
            ("blkio.bfq.io_service_bytes_recursive", "Total 0\n"),
            (
                "blkio.throttle.io_serviced_recursive",
                "8:0 Read 2\n8:0 Write 1\nTotal 3\n",
            ),
            (
                "blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 8192\n8:0 Write 4096\nTotal 12288\n",
            ),
        ],
    );
    let hugetlb = fake.hierarchy(
        "hugetlb",
        &["hugetlb"],
        &[
            ("hugetlb.2MB.usage_in_bytes", "2097152\n"),
            ("hugetlb.2MB.max_usage_in_bytes", "4194304\n"),
            ("hugetlb.2MB.failcnt", "1\n"),
        ],
    );
    let cg = Cgroup {
        v1: vec![cpu, cpuacct, cpuset, memory, pids, blkio, hugetlb],
        v2: None,
    };
    let got = serde_json::to_value(cg.stats_with(&sizes()).unwrap()).unwrap();
    let e = |op: &str, value: u64| serde_json::json!({"major": 8, "op": op, "value": value});
    let want = serde_json::json!({
        "cpu": {
            "usage": {"total": 4_270_669, "percpu": [2_153_047, 2_117_622],
                "percpu_kernel": [200, 400], "percpu_user": [100, 300],
                "kernel": 10_000_000, "user": 30_000_000},
            "throttling": {"periods": 6, "throttledPeriods": 2, "throttledTime": 777}
        },
        "cpuset": {"cpus": [0, 1, 2, 5], "cpu_exclusive": 0, "mems": [0], "mem_hardwall": 0,
            "mem_exclusive": 0, "memory_migrate": 0, "memory_spread_page": 0,
            "memory_spread_slab": 0, "memory_pressure": 0, "sched_load_balance": 1,
            "sched_relax_domain_level": -1},
        "memory": {
            "cache": 1_150_976,
            "usage": {"limit": 67_108_864, "usage": 1_634_304, "max": 1_638_400, "failcnt": 0},
            "swap": {"limit": 9_223_372_036_854_771_712u64, "usage": 1_634_304, "max": 1_638_400,
                "failcnt": 0},
            "kernel": {"limit": 0, "usage": 131_072, "max": 131_072, "failcnt": 0},
            "kernelTCP": {"limit": 0, "failcnt": 0},
            "raw": {"cache": 1_150_976, "rss": 49_152, "total_cache": 1_150_976}
        },
        "pids": {"current": 1, "limit": 42},
        "blkio": {
            "ioServiceBytesRecursive": [e("Read", 8192), e("Write", 4096)],
            "ioServicedRecursive": [e("Read", 2), e("Write", 1)]
        },
        "hugetlb": {"2MB": {"usage": 2_097_152, "max": 4_194_304, "failcnt": 1}},
        "intel_rdt": {},
        "network_interfaces": null
    });
    assert_eq!(got, want, "{got:#}");
    assert_eq!(cg.oom_kills().unwrap(), Some(3));
}

#[test]
fn v1_stat_file_parsing() {
    assert_eq!(
        v1::parse_cpu_list("0-3,8,10-11").unwrap(),
        [0, 1, 2, 3, 8, 10, 11]
    );
    assert_eq!(v1::parse_cpu_list("").unwrap(), Vec::<u16>::new());
    assert!(v1::parse_cpu_list("3-1").is_err());
    assert!(v1::parse_cpu_list("1-2-3").is_err());
    assert_eq!(
        v1::parse_usage_all("cpu user system\n0 1 2\n1 3 4\n").unwrap(),
        (vec![2, 4], vec![1, 3])
    );
    let b = v1::parse_blkio("8:0 Read 10\n8:16 Write 20\n8:0 30\nTotal 60\n").unwrap();
    assert_eq!(
        b.iter()
            .map(|e| (e.major, e.minor, e.op.as_str(), e.value))
            .collect::<Vec<_>>(),
        [(8, 0, "Read", 10), (8, 16, "Write", 20), (8, 0, "", 30)]
    );
    assert!(v1::parse_blkio("8:0\n").is_err());
    assert!(v1::parse_blkio("8:0 Read x\n").is_err());
}

// ---------------------------------------------------------------------------
// Root tests: real cgroups, created only below this process's own cgroups.
// ---------------------------------------------------------------------------

mod root {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command};

    fn skip() -> bool {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: cgroup tests need root");
            return true;
        }
        if layout().is_err() {
            eprintln!("skipping: no cgroup filesystem mounted");
            return true;
        }
        false
    }

    fn unique(name: &str) -> String {
        format!("mica-test-{}-{name}", std::process::id())
    }

    /// Kills the children and destroys the cgroup even if the test fails.
    struct Guard {
        cg: Cgroup,
        children: Vec<Child>,
        extra_dirs: Vec<PathBuf>,
    }

    impl Guard {
        fn new(cg: Cgroup) -> Guard {
            Guard {
                cg,
                children: Vec::new(),
                extra_dirs: Vec::new(),
            }
        }

        /// Create `cg`; the guard then removes what was made.
        fn create(&mut self, cg: &mut Cgroup) {
            let made = cg.create(&mut |_| Ok(()));
            self.cg = cg.clone();
            made.unwrap();
        }

        fn spawn_sleep(&mut self) -> i32 {
            let child = Command::new("sleep")
                .arg("30")
                .spawn()
                .expect("spawn sleep");
            let pid = child.id() as i32;
            self.children.push(child);
            pid
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            for c in &mut self.children {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = self.cg.thaw();
            let _ = self.cg.destroy();
            for d in self.extra_dirs.iter().rev() {
                let _ = fs::remove_dir(d);
            }
        }
    }

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).expect("valid resources JSON")
    }

    fn read_trim(p: &Path) -> String {
        fs::read_to_string(p)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
            .trim()
            .to_string()
    }

    /// The dir holding `v1_name` (or `v2_name` on cgroup2) for this cgroup.
    fn ctl_dir(cg: &Cgroup, v1_name: &str) -> (bool, PathBuf) {
        match cg.v1_with(v1_name) {
            Some(h) => (true, h.dir.clone()),
            None => (false, cg.v2_dir().expect("cgroup2").to_path_buf()),
        }
    }

    fn assert_all_gone(cg: &Cgroup) {
        for h in cg.all() {
            assert!(!h.dir.exists(), "{} still exists", h.dir.display());
            if let Some(t) = &h.created_top {
                assert!(!t.exists(), "{} still exists", t.display());
            }
        }
    }

    fn assert_killed(g: &mut Guard) {
        for c in &mut g.children {
            let st = c.wait().expect("wait child");
            assert_eq!(
                st.signal(),
                Some(libc::SIGKILL),
                "child not SIGKILLed: {st:?}"
            );
        }
        g.children.clear();
    }

    #[test]
    fn lifecycle_memory_pids_cpu_freeze_destroy() {
        if skip() {
            return;
        }
        let mut cg = Cgroup::resolve(Some(&unique("life")), "ignored").unwrap();
        // Below our own cgroup in every hierarchy, and nothing exists yet.
        let own = parse_proc_cgroup(&fs::read_to_string(PROC_SELF_CGROUP).unwrap()).unwrap();
        for h in &cg.v1 {
            let expect = h
                .mount
                .join(own.v1_path(&h.controllers).trim_start_matches('/'))
                .join(unique("life"));
            assert_eq!(h.dir, expect);
        }
        let mut g = Guard::new(cg.clone());
        g.create(&mut cg);
        for h in cg.all() {
            assert!(h.dir.is_dir(), "{} not created", h.dir.display());
            assert_eq!(h.created_top.as_ref(), Some(&h.dir));
        }
        // Another container naming the same cgroup joins it and owns none
        // of it: its destroy would leave it.
        let mut again = Cgroup::resolve(Some(&unique("life")), "ignored").unwrap();
        again.create(&mut |_| Ok(())).unwrap();
        assert!(again.all().all(|h| h.created_top.is_none()));

        let (mem_v1, mem) = ctl_dir(&cg, "memory");
        let with_swap = if mem_v1 {
            mem.join("memory.memsw.limit_in_bytes").exists()
        } else {
            mem.join("memory.swap.max").exists()
        };
        let swap = if with_swap {
            r#","swap":134217728"#
        } else {
            ""
        };
        let devices = if cg.v1_with("devices").is_some() {
            r#","devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":10,"minor":229,"access":"rw"},{"allow":true,"type":"b","major":7,"access":"r"}]"#
        } else {
            r#","devices":[{"allow":false,"access":"rwm"}]"#
        };
        let r = resources(&format!(
            r#"{{"memory":{{"limit":67108864,"reservation":33554432{swap}}},
               "pids":{{"limit":32}},
               "cpu":{{"shares":512,"quota":50000,"period":100000,"cpus":"0","mems":"0"}}
               {devices}}}"#
        ));
        cg.apply(&r).unwrap();

        if mem_v1 {
            assert_eq!(read_trim(&mem.join("memory.limit_in_bytes")), "67108864");
            assert_eq!(
                read_trim(&mem.join("memory.soft_limit_in_bytes")),
                "33554432"
            );
            if with_swap {
                assert_eq!(
                    read_trim(&mem.join("memory.memsw.limit_in_bytes")),
                    "134217728"
                );
            }
        } else {
            assert_eq!(read_trim(&mem.join("memory.max")), "67108864");
            assert_eq!(read_trim(&mem.join("memory.low")), "33554432");
            if with_swap {
                assert_eq!(read_trim(&mem.join("memory.swap.max")), "67108864");
            }
        }
        let (_, pids_dir) = ctl_dir(&cg, "pids");
        assert_eq!(read_trim(&pids_dir.join("pids.max")), "32");
        let (cpu_v1, cpu) = ctl_dir(&cg, "cpu");
        if cpu_v1 {
            assert_eq!(read_trim(&cpu.join("cpu.shares")), "512");
            assert_eq!(read_trim(&cpu.join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read_trim(&cpu.join("cpu.cfs_period_us")), "100000");
        } else {
            assert_eq!(read_trim(&cpu.join("cpu.weight")), "20");
            assert_eq!(read_trim(&cpu.join("cpu.max")), "50000 100000");
        }
        let (_, cpuset) = ctl_dir(&cg, "cpuset");
        assert_eq!(read_trim(&cpuset.join("cpuset.cpus")), "0");
        if let Some(h) = cg.v1_with("devices") {
            let list = read_trim(&h.dir.join("devices.list"));
            let mut got: Vec<&str> = list.lines().collect();
            got.sort_unstable();
            let mut want = vec!["c 10:229 rw", "b 7:* r"];
            want.extend(v1::DEFAULT_ALLOW);
            want.sort_unstable();
            assert_eq!(got, want);
        }

        // Lowering the limit below memory+swap, then raising both again:
        // the write order must satisfy the kernel both ways (v1).
        if with_swap {
            cg.apply(&resources(
                r#"{"memory":{"limit":33554432,"swap":67108864}}"#,
            ))
            .unwrap();
            cg.apply(&resources(
                r#"{"memory":{"limit":268435456,"swap":536870912}}"#,
            ))
            .unwrap();
            if mem_v1 {
                assert_eq!(read_trim(&mem.join("memory.limit_in_bytes")), "268435456");
                assert_eq!(
                    read_trim(&mem.join("memory.memsw.limit_in_bytes")),
                    "536870912"
                );
            }
        }

        let pid = g.spawn_sleep();
        cg.add_process(pid).unwrap();
        assert_eq!(cg.pids().unwrap(), vec![pid]);
        for h in cg.all() {
            assert_eq!(read_trim(&h.dir.join("cgroup.procs")), pid.to_string());
        }

        assert!(!cg.is_frozen().unwrap());
        cg.freeze().unwrap();
        assert!(cg.is_frozen().unwrap());
        cg.thaw().unwrap();
        assert!(!cg.is_frozen().unwrap());

        cg.destroy().unwrap();
        assert_killed(&mut g);
        assert_all_gone(&cg);
        // idempotent
        cg.destroy().unwrap();
        assert_eq!(cg.pids().unwrap(), Vec::<i32>::new());
        assert!(!cg.is_frozen().unwrap());
    }

    #[test]
    fn destroy_frozen_nested_cgroup() {
        if skip() {
            return;
        }
        let path = format!("{}/a/b", unique("nest"));
        let mut cg = Cgroup::resolve(Some(&path), "ignored").unwrap();
        let mut g = Guard::new(cg.clone());
        g.create(&mut cg);
        let p1 = g.spawn_sleep();
        let p2 = g.spawn_sleep();
        cg.add_process(p1).unwrap();
        cg.add_process(p2).unwrap();
        // a sub-cgroup made "by the container"
        let sub = cg.all().next().unwrap().dir.join("inner");
        fs::create_dir(&sub).unwrap();
        let mut expect = vec![p1, p2];
        expect.sort_unstable();
        assert_eq!(cg.pids().unwrap(), expect);
        cg.freeze().unwrap();
        assert!(cg.is_frozen().unwrap());
        cg.destroy().unwrap();
        assert_killed(&mut g);
        assert_all_gone(&cg);
        for h in cg.all() {
            // the created top is <own>/mica-test-...-nest, whose parent is ours
            let top = h.created_top.as_ref().unwrap();
            assert!(top.ends_with(unique("nest")));
            assert!(top.parent().unwrap().is_dir());
        }
    }

    /// Another container created an ancestor a moment ago and has not yet
    /// filled its cpuset.cpus/mems: ours must fill it, or no process could
    /// join the leaf (ENOSPC).
    #[test]
    fn empty_preexisting_cpuset_ancestor_is_filled() {
        if skip() {
            return;
        }
        let parent = unique("cpuset-race");
        let path = format!("{parent}/leaf");
        let probe = Cgroup::resolve(Some(&path), "ignored").unwrap();
        let Some(h) = probe.v1_with("cpuset") else {
            eprintln!("skipping: no v1 cpuset hierarchy");
            return;
        };
        let pre = h.dir.parent().unwrap().to_path_buf();
        fs::create_dir(&pre).unwrap();
        let mut cg = Cgroup::resolve(Some(&path), "ignored").unwrap();
        let mut g = Guard::new(cg.clone());
        g.extra_dirs.push(pre.clone());
        assert_eq!(read_trim(&pre.join("cpuset.cpus")), "");
        g.create(&mut cg);
        let want = read_trim(&pre.parent().unwrap().join("cpuset.cpus"));
        assert!(!want.is_empty());
        assert_eq!(read_trim(&pre.join("cpuset.cpus")), want);
        let leaf = &cg.v1_with("cpuset").unwrap().dir;
        assert_eq!(read_trim(&leaf.join("cpuset.cpus")), want);
        assert!(!read_trim(&leaf.join("cpuset.mems")).is_empty());
        let pid = g.spawn_sleep();
        cg.add_process(pid).unwrap();
    }

    #[test]
    fn preexisting_dirs_are_kept() {
        if skip() {
            return;
        }
        let parent = unique("pre");
        let path = format!("{parent}/leaf");
        let probe = Cgroup::resolve(Some(&path), "ignored").unwrap();
        // Pre-create the parent in one hierarchy.
        let first = probe.all().next().unwrap().clone();
        let pre = first.dir.parent().unwrap().to_path_buf();
        fs::create_dir(&pre).unwrap();
        let mut cg = Cgroup::resolve(Some(&path), "ignored").unwrap();
        let mut g = Guard::new(cg.clone());
        g.extra_dirs.push(pre.clone());
        g.create(&mut cg);

        let h0 = cg.all().next().unwrap();
        assert_eq!(h0.created_top.as_ref(), Some(&h0.dir));
        for h in cg.all().skip(1) {
            assert_eq!(h.created_top.as_deref(), h.dir.parent());
        }
        let pid = g.spawn_sleep();
        cg.add_process(pid).unwrap();
        cg.destroy().unwrap();
        assert_killed(&mut g);
        assert!(pre.is_dir(), "pre-existing {} was removed", pre.display());
        assert!(!h0.dir.exists());
        for h in cg.all().skip(1) {
            assert!(!h.dir.parent().unwrap().exists());
        }
    }

    #[test]
    fn kernel_refusals_and_missing_controllers() {
        if skip() {
            return;
        }
        let mut cg = Cgroup::resolve(Some(&unique("errs")), "ignored").unwrap();
        let mut g = Guard::new(cg.clone());
        g.create(&mut cg);
        match cg.apply(&resources(r#"{"cpu":{"cpus":"100000"}}"#)) {
            Err(Error::Write { path, value, .. }) => {
                assert!(path.ends_with("cpuset.cpus"), "{}", path.display());
                assert_eq!(value, "100000");
            }
            other => panic!("expected a write error, got {other:?}"),
        }
        if cg.v1_with("net_cls").is_none() {
            let e = cg
                .apply(&resources(r#"{"network":{"classID":1048577}}"#))
                .unwrap_err();
            assert!(
                matches!(&e, Error::ControllerMissing { controller, .. } if controller == "net_cls"),
                "{e}"
            );
        }
        let e = cg
            .apply(&resources(
                r#"{"hugepageLimits":[{"pageSize":"2M","limit":1}]}"#,
            ))
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidValue { .. } | Error::ControllerMissing { .. }
            ),
            "{e}"
        );
        // unset fields are written nowhere: an empty resources is a no-op
        cg.apply(&resources("{}")).unwrap();
        cg.apply(&resources(r#"{"memory":{},"cpu":{},"devices":[]}"#))
            .unwrap();
        cg.destroy().unwrap();
        assert_all_gone(&cg);
    }

    #[test]
    fn hugetlb_limit_where_available() {
        if skip() {
            return;
        }
        if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
            eprintln!("skipping: no 2MB huge pages");
            return;
        }
        let mut cg = Cgroup::resolve(Some(&unique("huge")), "ignored").unwrap();
        let mut g = Guard::new(cg.clone());
        g.create(&mut cg);
        let r = resources(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":8388608}]}"#);
        let file = if let Some(h) = cg.v1_with("hugetlb") {
            h.dir.join("hugetlb.2MB.limit_in_bytes")
        } else {
            match cg.v2_dir() {
                Some(d) if v2::controllers(d).unwrap().contains("hugetlb") => {
                    d.join("hugetlb.2MB.max")
                }
                _ => {
                    assert!(matches!(cg.apply(&r), Err(Error::ControllerMissing { .. })));
                    return;
                }
            }
        };
        cg.apply(&r).unwrap();
        assert_eq!(read_trim(&file), "8388608");
        cg.destroy().unwrap();
        assert_all_gone(&cg);
    }

    /// The same host seen as pure cgroup v2 (only the cgroup2 mount): runs the
    /// v2 code paths (cgroup.freeze, cgroup.kill, the device program) for real.
    #[test]
    fn pure_v2_view() {
        if skip() {
            return;
        }
        let mountinfo = fs::read_to_string(MOUNTINFO).unwrap();
        let only_v2: String = mountinfo
            .lines()
            .filter(|l| l.contains(" - cgroup2 "))
            .map(|l| format!("{l}\n"))
            .collect();
        if only_v2.is_empty() {
            eprintln!("skipping: cgroup2 not mounted");
            return;
        }
        let proc = fs::read_to_string(PROC_SELF_CGROUP).unwrap();
        let mut cg = Cgroup::resolve_from(&only_v2, &proc, Some(&unique("v2")), "x").unwrap();
        assert!(cg.v1.is_empty());
        let mut g = Guard::new(cg.clone());
        g.create(&mut cg);
        let dir = cg.v2_dir().unwrap().to_path_buf();
        assert!(dir.is_dir());

        // Device rules: an eBPF program on the cgroup. A process in it may
        // open /dev/null (runc's default list) and not /dev/kmsg (1:11).
        cg.apply(&resources(
            r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":10,"minor":200,"access":"rwm"}]}"#,
        ))
        .unwrap();
        let opens_in_cgroup = |dev: &str| -> bool {
            use std::os::unix::process::CommandExt;
            let procs = std::ffi::CString::new(
                dir.join("cgroup.procs")
                    .into_os_string()
                    .into_encoded_bytes(),
            )
            .unwrap();
            let mut cmd = std::process::Command::new("/bin/sh");
            cmd.args(["-c", &format!("exec 3<{dev}"), "sh"])
                .stderr(std::process::Stdio::null());
            unsafe {
                cmd.pre_exec(move || {
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                    Ok(())
                });
            }
            cmd.status().unwrap().success()
        };
        assert!(opens_in_cgroup("/dev/null"));
        assert!(!opens_in_cgroup("/dev/kmsg"));
        // New rules replace the program (an update, a reused cgroup): the
        // old one is detached, else it would still deny /dev/kmsg.
        cg.apply(&resources(
            r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":11,"access":"rw"}]}"#,
        ))
        .unwrap();
        assert!(opens_in_cgroup("/dev/kmsg"));
        let attached = super::devices::attached(&fs::File::open(&dir).unwrap()).unwrap();
        assert_eq!(attached.len(), 1, "{attached:?}");
        // A rule the v1 syntax cannot express is refused before anything.
        let e = cg
            .apply(&resources(
                r#"{"devices":[{"allow":true,"type":"c","major":1,"minor":3,"access":"rwx"}]}"#,
            ))
            .unwrap_err();
        assert!(matches!(e, Error::InvalidValue { .. }), "{e}");
        let e = cg
            .apply(&resources(r#"{"unified":{"../x":"1"}}"#))
            .unwrap_err();
        assert!(matches!(e, Error::InvalidValue { .. }), "{e}");
        // A unified entry for a core file.
        cg.apply(&resources(r#"{"unified":{"cgroup.max.descendants":"5"}}"#))
            .unwrap();
        assert_eq!(read_trim(&dir.join("cgroup.max.descendants")), "5");

        let pid = g.spawn_sleep();
        cg.add_process(pid).unwrap();
        assert_eq!(cg.pids().unwrap(), vec![pid]);
        // Statistics from the kernel's v2 files: the one process (pids.current,
        // else cgroup.procs counted), every page size the cgroup has files for.
        let s = cg.stats().unwrap();
        assert_eq!((s.pids.current, s.pids.limit), (1, 0), "{s:?}");
        let sizes = super::stats::hugepage_sizes();
        let with_files: Vec<&String> = sizes
            .iter()
            .filter(|z| dir.join(format!("hugetlb.{z}.current")).exists())
            .collect();
        assert_eq!(s.hugetlb.keys().collect::<Vec<_>>(), with_files, "{s:?}");
        // No OOM kill yet; no count where the memory controller is off.
        let want = dir.join("memory.events").exists().then_some(0);
        assert_eq!(cg.oom_kills().unwrap(), want);
        cg.freeze().unwrap();
        assert!(cg.is_frozen().unwrap());
        assert_eq!(read_trim(&dir.join("cgroup.freeze")), "1");
        cg.thaw().unwrap();
        assert!(!cg.is_frozen().unwrap());
        cg.freeze().unwrap();
        // destroy a frozen v2 cgroup: cgroup.kill + thaw
        cg.destroy().unwrap();
        assert_killed(&mut g);
        assert!(!dir.exists());
    }

    /// The same host seen as pure cgroup v1 (no cgroup2 mount).
    #[test]
    fn pure_v1_view() {
        if skip() {
            return;
        }
        let mountinfo = fs::read_to_string(MOUNTINFO).unwrap();
        let only_v1: String = mountinfo
            .lines()
            .filter(|l| !l.contains(" - cgroup2 "))
            .map(|l| format!("{l}\n"))
            .collect();
        let proc = fs::read_to_string(PROC_SELF_CGROUP).unwrap();
        let mut cg = match Cgroup::resolve_from(&only_v1, &proc, Some(&unique("v1")), "x") {
            Ok(cg) => cg,
            Err(e) => {
                eprintln!("skipping: no cgroup v1 ({e})");
                return;
            }
        };
        assert!(cg.v2_dir().is_none());
        let mut g = Guard::new(cg.clone());
        g.create(&mut cg);
        let e = cg
            .apply(&resources(r#"{"unified":{"memory.high":"1"}}"#))
            .unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        if cg.v1_with("pids").is_some() {
            cg.apply(&resources(r#"{"pids":{"limit":-1}}"#)).unwrap();
            assert_eq!(read_trim(&v1(&cg, "pids").dir.join("pids.max")), "max");
        }
        let pid = g.spawn_sleep();
        cg.add_process(pid).unwrap();
        assert_eq!(cg.pids().unwrap(), vec![pid]);
        cg.destroy().unwrap();
        assert_killed(&mut g);
        assert_all_gone(&cg);
    }
}
