//! `mica image ...` and `mica launch`: the commands that join the image
//! store to the runtime. Launch = resolve (or import) the image, write a
//! bundle whose root is the image's read-only layers, run it.

use crate::container::{self, CreateOptions};
use crate::image::{Image, Store};
use crate::launch::plan::LOWERDIRS_ANNOTATION;
use crate::spec::launch::{self as ls, ImageProcess, LaunchOptions};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The annotation a launched container's config names its image by.
pub const IMAGE_ANNOTATION: &str = "org.mica.image";

/// Image digest -> ids of the containers under `root` launched from it
/// (running or not: docker keeps an image a stopped container uses, too).
pub fn image_users(root: &Path) -> Result<BTreeMap<String, Vec<String>>, container::Error> {
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for st in container::list(root)? {
        if let (Some(d), Some(id)) = (
            st["annotations"][IMAGE_ANNOTATION].as_str(),
            st["id"].as_str(),
        ) {
            users.entry(d.to_string()).or_default().push(id.to_string());
        }
    }
    Ok(users)
}

/// docker's exit statuses: 125 when mica itself fails, 126 when the
/// command cannot be executed, 127 when it is not found.
pub const EXIT_MICA: i32 = 125;
pub const EXIT_CANNOT_EXEC: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

pub struct Failure {
    pub code: i32,
    pub message: String,
}

fn mica_failure(e: impl std::fmt::Display) -> Failure {
    Failure {
        code: EXIT_MICA,
        message: e.to_string(),
    }
}

pub fn open_store(store: Option<&Path>) -> Result<Store, Failure> {
    let root = store
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("MICA_STORE").map(PathBuf::from))
        .unwrap_or_else(Store::default_root);
    Store::open(&root).map_err(mica_failure)
}

/// A reference that names a file or directory is imported first.
pub fn resolve_or_import(
    store: &Store,
    reference: &str,
    platform: Option<&str>,
) -> Result<Image, Failure> {
    let p = Path::new(reference);
    if (reference.contains('/') || reference.ends_with(".tar")) && p.exists() {
        return store
            .import(p, None, platform, is_tty())
            .map_err(mica_failure);
    }
    store.resolve(reference).map_err(mica_failure)
}

fn is_tty() -> bool {
    unsafe { libc::isatty(2) == 1 }
}

fn random_id() -> String {
    let mut b = [0u8; 6];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b.copy_from_slice(&t.to_le_bytes()[..6]);
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("mica-{hex}")
}

pub struct Launch {
    pub reference: String,
    pub name: Option<String>,
    pub rm: bool,
    pub detach: bool,
    pub platform: Option<String>,
    pub options: LaunchOptions,
}

/// Write the bundle for `image` under `<root>/.bundles/<id>`; returns its
/// path and its config.
pub fn write_bundle(
    store: &Store,
    image: &Image,
    root: &Path,
    id: &str,
    o: &LaunchOptions,
) -> Result<(PathBuf, Spec), Failure> {
    let bundles = root.join(".bundles");
    let bundle = bundles.join(id);
    // One a removed container left (see `container::reuse`), else a new one.
    let claimed =
        std::fs::create_dir_all(&bundles).and_then(|()| container::reuse::claim(&bundles, &bundle));
    match claimed {
        Ok(_lock) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(mica_failure(format!(
                "container with id \"{id}\" already exists"
            )))
        }
        Err(e) => return Err(mica_failure(format!("create {}: {e}", bundle.display()))),
    }
    let r = fill_bundle(store, image, &bundle, o);
    if r.is_err() {
        // A bad option or image leaves nothing behind.
        container::remove_bundle(&bundle);
    }
    r
}

fn fill_bundle(
    store: &Store,
    image: &Image,
    bundle: &Path,
    o: &LaunchOptions,
) -> Result<(PathBuf, Spec), Failure> {
    let cfg: Value =
        serde_json::to_value(store.config(image).map_err(mica_failure)?).map_err(mica_failure)?;
    let process = ImageProcess::from_config(&cfg);
    let mut lower = store.lower_dirs(image).map_err(mica_failure)?;
    // Mountpoints for volumes and tmpfs the image lacks live in a layer of
    // this container's own, stacked on top: the image is never written.
    let extra = bundle.join("mountpoints");
    let mut made = false;
    let targets = o
        .volumes
        .iter()
        .filter_map(|v| {
            let mut it = v.split(':');
            let host = it.next()?;
            Some((it.next()?.to_string(), Path::new(host).is_dir()))
        })
        .chain(
            o.tmpfs
                .iter()
                .map(|t| (t.split(':').next().unwrap_or("").to_string(), true)),
        );
    for (dest, is_dir) in targets {
        let rel = dest.trim_start_matches('/');
        if rel.is_empty()
            || rel.split('/').any(|c| c == "..")
            || lower.iter().any(|d| d.join(rel).exists())
        {
            continue;
        }
        let p = extra.join(rel);
        let r = if is_dir {
            std::fs::create_dir_all(&p)
        } else {
            p.parent()
                .map(std::fs::create_dir_all)
                .unwrap_or(Ok(()))
                .and_then(|_| std::fs::File::create(&p).map(drop))
        };
        r.map_err(|e| mica_failure(format!("create mountpoint {}: {e}", p.display())))?;
        made = true;
    }
    let etc = |file: &str| -> Option<String> {
        lower
            .iter()
            .find_map(|d| std::fs::read_to_string(d.join("etc").join(file)).ok())
    };
    // root.path is set below, once the layers are known.
    let ls::Config {
        value: mut config,
        default_seccomp,
    } = ls::config(&process, o, Path::new(""), &etc).map_err(mica_failure)?;
    // The image's mountpoints layer (first) holds only what the image lacks
    // for the usual mounts. When no mount of this config lands on anything in
    // it, it is left out: one layer is mounted as it is, with no overlay.
    let lands_in = |layer: &Path| {
        config["mounts"].as_array().into_iter().flatten().any(|m| {
            let dest = m["destination"].as_str().unwrap_or("/");
            layer
                .join(dest.trim_start_matches('/'))
                .symlink_metadata()
                .is_ok()
        })
    };
    if lower.len() > 1 && !lands_in(&lower[0]) {
        lower.remove(0);
    }
    if made {
        lower.insert(0, extra);
    }
    // One layer is the root itself; several are stacked (read-only overlay).
    let rootfs = if lower.len() == 1 {
        lower[0].clone()
    } else {
        let r = bundle.join("rootfs");
        std::fs::create_dir(&r)
            .map_err(|e| mica_failure(format!("create {}: {e}", r.display())))?;
        r
    };
    config["root"]["path"] = json!(rootfs);
    let mut ann = json!({
        IMAGE_ANNOTATION: image.digest,
        container::BUNDLE_OWNED_ANNOTATION: "true",
    });
    if lower.len() > 1 {
        let dirs: Vec<String> = lower.iter().map(|d| d.display().to_string()).collect();
        ann[LOWERDIRS_ANNOTATION] = json!(dirs.join(":"));
    }
    config["annotations"] = ann;
    // The spec as `run` would read it back, without reading the file (from
    // bytes, not the Value: one deserializer in the binary, not two). The
    // default seccomp profile (most of the config) joins it typed, and the
    // file is written from the spec.
    let text = serde_json::to_vec(&config).map_err(mica_failure)?;
    let mut spec: Spec = serde_json::from_slice(&text).map_err(mica_failure)?;
    if default_seccomp {
        // Fail closed: the profile is never silently dropped.
        let linux = spec
            .linux_mut()
            .as_mut()
            .ok_or_else(|| mica_failure("generated config has no \"linux\" section"))?;
        linux.set_seccomp(Some(crate::spec::default_seccomp::profile()));
    }
    let text = serde_json::to_vec(&spec).map_err(mica_failure)?;
    container::reuse::write_over(&bundle.join("config.json"), &text, 0o644)
        .map_err(|e| mica_failure(format!("write config.json: {e}")))?;
    let bundle = std::fs::canonicalize(bundle)
        .map_err(|e| mica_failure(format!("bundle {}: {e}", bundle.display())))?;
    Ok((bundle, spec))
}

/// Returns the process's exit status, or a failure with docker's codes.
pub fn launch(root: &Path, store: Option<&Path>, l: &Launch) -> Result<i32, Failure> {
    if l.detach && l.rm {
        return Err(mica_failure(
            "--rm with --detach needs a monitor process, and mica leaves none behind: \
             remove the container with `mica delete` when it is done",
        ));
    }
    if l.detach && l.options.tty {
        return Err(mica_failure(
            "--tty with --detach: nothing would be attached to the terminal",
        ));
    }
    let store = open_store(store)?;
    let image = resolve_or_import(&store, &l.reference, l.platform.as_deref())?;
    let id = l.name.clone().unwrap_or_else(random_id);
    container::state::validate_id(&id).map_err(mica_failure)?;
    let (bundle, spec) = write_bundle(&store, &image, root, &id, &l.options)?;
    crate::trace::phase("image and bundle");
    let opts = CreateOptions {
        bundle: bundle.clone(),
        pid_file: None,
        console_socket: None,
        preserve_fds: 0,
        no_pivot: false,
        no_new_keyring: false,
        listen: None,
    };
    let r = container::run_spec(root, &id, &opts, bundle.clone(), spec, l.detach, !l.rm);
    match r {
        Ok(code) => {
            if l.detach {
                println!("{id}");
            }
            Ok(code)
        }
        Err(e) => {
            // Nothing was created (create cleans up after itself): drop the bundle.
            if !root.join(&id).exists() {
                container::remove_bundle(&bundle);
            }
            Err(exec_failure(e))
        }
    }
}

fn exec_failure(e: container::Error) -> Failure {
    use crate::launch::Step;
    let code = match &e {
        container::Error::Launch(crate::launch::Error::Child { step, errno, .. }) => match step {
            Step::ExecNotFound => EXIT_NOT_FOUND,
            Step::ExecPermission => EXIT_CANNOT_EXEC,
            // The execve itself failed (a missing ELF interpreter, ENOEXEC).
            Step::ExecLookup if *errno == nix::errno::Errno::ENOENT => EXIT_NOT_FOUND,
            Step::ExecLookup => EXIT_CANNOT_EXEC,
            _ => EXIT_MICA,
        },
        _ => EXIT_MICA,
    };
    Failure {
        code,
        message: e.to_string(),
    }
}

/// `mica image ls` as a table.
pub fn print_images(images: &[Image]) {
    println!(
        "{:<30} {:<12} {:<19} {:>10}  IMPORTED",
        "NAME", "TAG", "DIGEST", "SIZE"
    );
    for img in images {
        let short = img
            .digest
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>();
        let names: Vec<(String, String)> = if img.names.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            img.names
                .iter()
                .map(|n| match n.rsplit_once(':') {
                    Some((a, b)) if !b.contains('/') => (a.to_string(), b.to_string()),
                    _ => (n.clone(), "latest".into()),
                })
                .collect()
        };
        for (name, tag) in names {
            println!(
                "{:<30} {:<12} sha256:{:<12} {:>10}  {}",
                name,
                tag,
                short,
                human_size(img.size),
                img.imported_at
            );
        }
    }
}

fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_well() {
        assert_eq!(super::human_size(512), "512 B");
        assert_eq!(super::human_size(1536), "1.5 KiB");
        assert_eq!(super::human_size(3 << 20), "3.0 MiB");
    }

    #[test]
    fn random_ids_are_valid_and_differ() {
        let a = super::random_id();
        let b = super::random_id();
        assert!(crate::container::state::validate_id(&a).is_ok());
        assert_ne!(a, b);
    }
}
