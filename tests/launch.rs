//! `mica launch`: from an image in the store to a running process with a
//! read-only root, docker-style options and exit statuses.

mod common;

use common::{fixtures, parse_probe, Env, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A store, a state root and images made with rootfs-fixtures/make-image.sh.
struct World {
    env: Env,
    store: PathBuf,
}

impl World {
    fn new() -> World {
        let env = Env::new();
        let store = env.tmp.path().join("store");
        World { env, store }
    }

    fn mica(&self, args: &[&str]) -> Output {
        self.env
            .cmd()
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run mica")
    }

    /// `mica ARGS`, which must succeed.
    fn mica_ok(&self, args: &[&str]) -> Output {
        let out = self.mica(args);
        assert!(
            out.status.success(),
            "mica {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `mica ARGS`, which must fail; its stderr.
    fn mica_err(&self, args: &[&str]) -> String {
        let out = self.mica(args);
        assert!(!out.status.success(), "mica {args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Pack `rootfs` as NAME:TAG (Cmd = `cmd`) and import it.
    fn image(&self, rootfs: &Path, name: &str, cmd: &str) {
        let tar = self
            .env
            .tmp
            .path()
            .join(format!("{}.tar", name.replace([':', '/'], "_")));
        let st = Command::new("sh")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-fixtures/make-image.sh"))
            .arg(rootfs)
            .arg(&tar)
            .arg(name)
            .env("CMD", cmd)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "make-image.sh failed");
        self.mica_ok(&["image", "import", tar.to_str().unwrap(), "--name", name]);
    }

    /// `launch -d ARGS` with stdout to `out` (or nowhere): the container
    /// inherits it, so it must not be a pipe we would wait on.
    fn launch_detached(&self, args: &[&str], out: Option<&Path>) -> std::process::ExitStatus {
        let stdout = match out {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::null(),
        };
        self.env
            .cmd()
            .arg("--store")
            .arg(&self.store)
            .args(["launch", "-d"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null())
            .status()
            .unwrap()
    }

    fn launch(&self, args: &[&str]) -> (i32, String, String) {
        let mut a = vec!["launch"];
        a.extend_from_slice(args);
        let out = self.mica(&a);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A copy of the busybox fixture with a version file, for "a newer image".
fn busybox_with(version: &str, tmp: &TempDir) -> PathBuf {
    let dir = tmp.path().join(format!("rootfs-{version}"));
    let st = Command::new("cp")
        .arg("-a")
        .arg(fixtures().join("busybox"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(dir.join("etc/version"), version).unwrap();
    dir
}

#[test]
fn root_and_image_are_read_only_only_tmpfs_and_volumes_write() {
    let w = World::new();
    w.image(
        &fixtures().join("probe-only"),
        "micro/probe:1",
        r#"["/mica-probe"]"#,
    );
    let vol = TempDir::new("vol");
    let v = format!("{}:/data", vol.path().display());
    let (code, out, err) = w.launch(&[
        "--rm",
        "--tmpfs",
        "/tmp",
        "-v",
        &v,
        "micro/probe:1",
        "--",
        "/mica-probe",
        "--write",
        "/tmp/a",
        "--write",
        "/data/b",
        "--write",
        "/etc/c",
        "--write",
        "/mica-probe",
        "--remount-root-rw",
    ]);
    assert_eq!(code, 0, "{err}");
    let p = parse_probe(&out);
    assert_eq!(p["root_writable"]["errno"], "EROFS");
    let writes = p["writes"].as_array().unwrap();
    let result = |path: &str| writes.iter().find(|w| w["path"] == path).unwrap().clone();
    assert_eq!(result("/tmp/a")["ok"], true);
    assert_eq!(result("/data/b")["ok"], true);
    assert_eq!(result("/etc/c")["errno"], "EROFS");
    assert_eq!(result("/mica-probe")["errno"], "EROFS");
    // Nothing can make the root writable again.
    assert_eq!(
        p["remount_root"]["root_writable_after"]["ok"], false,
        "{}",
        p["remount_root"]
    );
    assert!(
        vol.path().join("b").exists(),
        "the volume write reached the host"
    );
    // The default profile: no_new_privs and a seccomp filter; pid 1; no network.
    assert_eq!(p["no_new_privs"], true);
    assert_eq!(p["seccomp"], 2);
    assert_eq!(p["pid"], 1);
    // --rm: nothing left in the state root.
    w.env.assert_state_empty();
}

/// The filesystem type of the container's root, from its mountinfo.
fn root_fstype(mountinfo: &str) -> Option<String> {
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))?;
    Some(line.split(" - ").nth(1)?.split(' ').next()?.to_string())
}

/// An image that has every mountpoint its mounts land on is mounted as it
/// is (its one layer, read-only bind); the store's mountpoints layer (what
/// the image lacks, here /etc/hostname) is stacked on top (read-only
/// overlay) only when a mount lands on something in it.
#[test]
fn mountpoints_layer_only_when_a_mount_lands_in_it() {
    let w = World::new();
    w.image(&fixtures().join("busybox"), "bb:1", r#"["/bin/true"]"#);
    assert!(!fixtures().join("busybox/etc/hostname").exists());
    let (code, out, err) = w.launch(&["--rm", "bb:1", "cat", "/proc/self/mountinfo"]);
    assert_eq!(code, 0, "{err}");
    let fs = root_fstype(&out);
    assert!(fs.is_some() && fs.as_deref() != Some("overlay"), "{out}");

    let host = TempDir::new("hostname");
    let f = host.path().join("hostname");
    std::fs::write(&f, "from-the-host\n").unwrap();
    let v = format!("{}:/etc/hostname:ro", f.display());
    let (code, out, err) = w.launch(&[
        "--rm",
        "-v",
        &v,
        "bb:1",
        "sh",
        "-c",
        "cat /etc/hostname /proc/self/mountinfo",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("from-the-host\n"), "{out}");
    assert_eq!(root_fstype(&out).as_deref(), Some("overlay"), "{out}");
    w.env.assert_state_empty();
}

/// `image rm` keeps an image containers under the state root were launched
/// from, running or stopped (as docker does), so `prune` keeps its layers;
/// removing another of its names is fine. Once the last of them is deleted,
/// the image goes and `prune` takes its layers.
#[test]
fn image_rm_refuses_an_image_containers_use() {
    let w = World::new();
    w.image(&fixtures().join("busybox"), "bb:1", r#"["/bin/true"]"#);
    // Tracked: deleted (--force) when the test ends, even if it fails.
    let running = w.env.id("user");
    let status = w.launch_detached(&["--name", &running, "bb:1", "sleep", "600"], None);
    assert!(status.success());
    // Without --rm the stopped container stays.
    let stopped = w.env.id("user");
    let (code, _, err) = w.launch(&["--name", &stopped, "bb:1", "true"]);
    assert_eq!(code, 0, "{err}");
    let layers = || std::fs::read_dir(w.store.join("layers")).unwrap().count();
    let before = layers();
    assert!(before > 0);

    // The ids the refusal names: "... used by container(s) A, B: delete them first".
    let users = |e: &str| -> Vec<String> {
        let list = e
            .split_once("used by container(s) ")
            .and_then(|(_, r)| r.split_once(':'))
            .unwrap_or_else(|| panic!("no container list in {e:?}"))
            .0;
        let mut v: Vec<String> = list.split(", ").map(String::from).collect();
        v.sort();
        v
    };
    let mut both = vec![running.clone(), stopped.clone()];
    both.sort();
    assert_eq!(users(&w.mica_err(&["image", "rm", "bb:1"])), both);
    w.mica_ok(&["image", "prune"]);
    assert_eq!(
        layers(),
        before,
        "prune took the layers of a running container"
    );
    // Another name of the same image can go: the image keeps bb:1.
    w.mica_ok(&["image", "tag", "bb:1", "bb:2"]);
    w.mica_ok(&["image", "rm", "bb:2"]);

    // The stopped container alone still holds the image.
    w.mica_ok(&["delete", "--force", &running]);
    assert_eq!(
        users(&w.mica_err(&["image", "rm", "bb:1"])),
        vec![stopped.clone()]
    );
    w.mica_ok(&["delete", &stopped]);
    w.mica_ok(&["image", "rm", "bb:1"]);
    w.mica_ok(&["image", "prune"]);
    assert!(
        layers() < before,
        "prune kept the layers of a removed image"
    );
    w.env.assert_state_empty();
}

#[test]
fn volume_data_survives_replacing_the_container_with_a_newer_image() {
    let w = World::new();
    let tmp = TempDir::new("roots");
    w.image(&busybox_with("1", &tmp), "app:1", r#"["/bin/sh"]"#);
    w.image(&busybox_with("2", &tmp), "app:2", r#"["/bin/sh"]"#);
    let vol = TempDir::new("data");
    let v = format!("{}:/data", vol.path().display());
    let (code, out, err) = w.launch(&[
        "--rm",
        "-v",
        &v,
        "app:1",
        "--",
        "/bin/sh",
        "-c",
        "cat /etc/version; echo saved-by-$(cat /etc/version) > /data/state",
    ]);
    assert_eq!((code, out.trim()), (0, "1"), "{err}");
    let (code, out, err) = w.launch(&[
        "--rm",
        "-v",
        &v,
        "app:2",
        "--",
        "/bin/sh",
        "-c",
        "cat /etc/version; cat /data/state",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "2saved-by-1\n");
    // The rollback image is still there and unchanged.
    let (code, out, _) = w.launch(&["--rm", "app:1", "--", "/bin/cat", "/etc/version"]);
    assert_eq!((code, out.as_str()), (0, "1"));
}

#[test]
fn exit_statuses_follow_docker() {
    let w = World::new();
    w.image(&fixtures().join("busybox"), "bb:1", r#"["/bin/sh"]"#);
    let (code, _, _) = w.launch(&["--rm", "bb:1", "--", "/bin/sh", "-c", "exit 42"]);
    assert_eq!(code, 42);
    let (code, _, err) = w.launch(&["--rm", "bb:1", "--", "/no/such/cmd"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("no such file or directory"), "{err}");
    let (code, _, err) = w.launch(&["--rm", "bb:1", "--", "nosuchcmd"]);
    assert_eq!(code, 127, "{err}");
    let (code, _, err) = w.launch(&["--rm", "bb:1", "--", "/etc/passwd"]);
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    let (code, _, err) = w.launch(&["--rm", "no/such:image"]);
    assert_eq!(code, 125, "{err}");
    let (code, _, err) = w.launch(&["--rm", "--memory", "lots", "bb:1"]);
    assert_eq!(code, 125, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    w.env.assert_state_empty();
}

#[test]
fn image_config_and_options_shape_the_process() {
    let w = World::new();
    w.image(
        &fixtures().join("busybox"),
        "bb:1",
        r#"["/usr/bin/mica-probe"]"#,
    );
    // The image's Cmd runs by default.
    let (code, out, err) = w.launch(&["--rm", "bb:1"]);
    assert_eq!(code, 0, "{err}");
    let p = parse_probe(&out);
    assert_eq!(p["args"], serde_json::json!(["/usr/bin/mica-probe"]));
    assert_eq!(p["cwd"], "/");
    // Options as docker users type them.
    let (code, out, err) = w.launch(&[
        "--rm",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "user",
        "--hostname",
        "box",
        "--tmpfs",
        "/tmp",
        "--memory",
        "48m",
        "--pids-limit",
        "12",
        "--cap-drop",
        "all",
        "--cap-add",
        "net_bind_service",
        "bb:1",
    ]);
    assert_eq!(code, 0, "{err}");
    let p = parse_probe(&out);
    assert_eq!(p["uid"], 1000);
    assert_eq!(p["gid"], 1000);
    assert_eq!(p["groups"], serde_json::json!([29, 44, 100]));
    assert_eq!(p["cwd"], "/tmp");
    assert_eq!(p["hostname"], "box");
    assert!(p["env"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("FOO=bar")));
    assert_eq!(p["cgroup"]["limits"]["memory"], 48 << 20);
    assert_eq!(p["cgroup"]["limits"]["pids"], 12);
    assert_eq!(
        p["caps"]["bounding"],
        serde_json::json!(["CAP_NET_BIND_SERVICE"])
    );
}

#[test]
fn default_seccomp_profile_blocks_what_docker_blocks() {
    let w = World::new();
    w.image(
        &fixtures().join("busybox"),
        "bb:1",
        r#"["/usr/bin/mica-probe"]"#,
    );
    let (code, out, err) = w.launch(&[
        "--rm",
        "--cap-add",
        "sys_admin",
        "bb:1",
        "--",
        "/usr/bin/mica-probe",
        "--syscall",
        "unshare",
        "--syscall",
        "getpid",
    ]);
    assert_eq!(code, 0, "{err}");
    let p = parse_probe(&out);
    let sys = p["syscalls"].as_array().unwrap();
    let unshare = sys.iter().find(|s| s["name"] == "unshare").unwrap();
    assert_eq!(unshare["errno"], "EPERM", "{unshare}");
    assert_eq!(
        sys.iter().find(|s| s["name"] == "getpid").unwrap()["ok"],
        true
    );
    // Unconfined: the same call is no longer refused by seccomp.
    let (code, out, err) = w.launch(&[
        "--rm",
        "--cap-add",
        "sys_admin",
        "--security-opt",
        "seccomp=unconfined",
        "bb:1",
        "--",
        "/usr/bin/mica-probe",
        "--syscall",
        "unshare",
    ]);
    assert_eq!(code, 0, "{err}");
    let p = parse_probe(&out);
    assert_eq!(p["seccomp"], 0);
}

#[test]
fn detached_launch_keeps_running_until_deleted() {
    let w = World::new();
    w.image(
        &fixtures().join("probe-only"),
        "micro/probe:1",
        r#"["/mica-probe"]"#,
    );
    // The container inherits stdout: a file, not a pipe we would wait on forever.
    let out_file = w.env.tmp.path().join("launch.out");
    let status = w.launch_detached(
        &[
            "--name",
            "bg1",
            "micro/probe:1",
            "--",
            "/mica-probe",
            "--quiet",
            "--sleep",
            "inf",
        ],
        Some(&out_file),
    );
    let out = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!((status.code(), out.trim()), (Some(0), "bg1"));
    let st = w.env.state("bg1");
    assert_eq!(st["status"], "running");
    let bundle = PathBuf::from(st["bundle"].as_str().unwrap());
    assert!(bundle.exists());
    w.mica_ok(&["delete", "--force", "bg1"]);
    assert!(
        !bundle.exists(),
        "the launch bundle goes with the container"
    );
    w.env.assert_state_empty();
}

#[test]
fn concurrent_launches_of_one_image() {
    let w = std::sync::Arc::new(World::new());
    w.image(
        &fixtures().join("probe-only"),
        "micro/probe:1",
        r#"["/mica-probe", "--quiet"]"#,
    );
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let w = w.clone();
            std::thread::spawn(move || w.launch(&["--rm", "micro/probe:1"]).0)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 0);
    }
    w.env.assert_state_empty();
    let out = w.mica(&["image", "verify", "micro/probe:1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
