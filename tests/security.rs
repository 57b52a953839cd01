//! Nothing of mica is reachable from inside: a container that can see the
//! mica process (no pid namespace) cannot write its binary or walk into its
//! cwd, root or environment through /proc (CVE-2019-5736, CVE-2024-21626).

mod common;

use common::Env;
use serde_json::json;

#[test]
fn mica_process_is_unreachable_through_proc() {
    let env = Env::new();
    let script = "echo x > /proc/$PPID/exe; echo write=$?; \
                  ls /proc/$PPID/cwd/ >/dev/null; echo cwd=$?; \
                  ls /proc/$PPID/root/ >/dev/null; echo root=$?; \
                  cat /proc/$PPID/environ >/dev/null; echo environ=$?; \
                  readlink /proc/$PPID/exe >/dev/null; echo readlink=$?";
    let b = env.bundle("busybox", &["/bin/sh", "-c", script], |c| {
        // Without a pid namespace the container sees `mica run` as its parent.
        let ns: Vec<_> = c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] != "pid")
            .cloned()
            .collect();
        c["linux"]["namespaces"] = json!(ns);
    });
    let (code, out, err) = env.run(&b);
    assert_eq!(code, 0, "{out} {err}");
    for probe in ["write", "cwd", "root", "environ", "readlink"] {
        assert!(
            out.contains(&format!("{probe}=1")),
            "{probe} of mica's /proc entry succeeded from inside: {out} / {err}"
        );
    }
    // The checks were made against the right process: its parent existed.
    assert!(err.contains("Permission denied"), "{err}");
}

#[test]
fn container_cwd_and_root_are_inside() {
    let env = Env::new();
    let v = env.probe(
        &["--read", "/proc/self/root", "--read", "/proc/1/cwd"],
        |_| {},
    );
    assert_eq!(v["cwd"], "/");
    // Both links resolve inside the container: listing them shows the fixture's root.
    for r in v["reads"].as_array().unwrap() {
        assert_eq!(r["ok"], true, "{r}");
        let entries: Vec<&str> = r["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(
            entries.contains(&"bin") && entries.contains(&"usr"),
            "{entries:?}"
        );
    }
}
