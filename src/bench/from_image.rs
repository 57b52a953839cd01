//! `mica bench IMAGE`: the workload is an image's own root and command.
//! The image is imported into a store (a path) or resolved in mica's store
//! (a name); its layers are stacked read-only with overlayfs in a private
//! mount namespace of the bench process, so every contender starts the same
//! root and the host's mounts are untouched.

use super::workload::Workload;
use super::Error;
use crate::image::{Image, Store};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// The image the bench runs.
pub struct FromImage {
    pub workload: Workload,
    /// Store and reference the `mica launch` contenders use.
    pub store: PathBuf,
    pub reference: String,
    /// IMAGE as given, when it is a path (the cold import needs one).
    pub path: Option<PathBuf>,
    /// The overlay mount to undo.
    pub mount: PathBuf,
}

fn setup(e: impl std::fmt::Display) -> Error {
    Error::Setup(e.to_string())
}

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Threads:")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Import or resolve `image`, and mount its root at `work/rootfs`.
pub fn prepare(image: &str, work: &Path) -> Result<FromImage, Error> {
    let as_path = Path::new(image);
    let (store_root, path) = if as_path.exists() {
        (
            work.join("stores/image"),
            Some(std::fs::canonicalize(as_path).map_err(setup)?),
        )
    } else {
        let root = std::env::var_os("MICA_STORE")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(Store::default_root);
        (root, None)
    };
    let store = Store::open(&store_root).map_err(|e| setup(format!("image store: {e}")))?;
    let (img, reference): (Image, String) = match &path {
        Some(p) => {
            let img = store
                .import(p, Some(super::image::REFERENCE), None, false)
                .map_err(|e| setup(format!("import {}: {e}", p.display())))?;
            (img, super::image::REFERENCE.to_string())
        }
        None => (
            store
                .resolve(image)
                .map_err(|e| setup(format!("IMAGE {image}: {e}")))?,
            image.to_string(),
        ),
    };
    let config = store.config(&img).map_err(setup)?;
    let c = config.config().clone().unwrap_or_default();
    let mut args: Vec<String> = c.entrypoint().clone().unwrap_or_default();
    args.extend(c.cmd().clone().unwrap_or_default());
    if args.is_empty() {
        return Err(setup(format!("IMAGE {image}: no Entrypoint or Cmd to run")));
    }
    let lower = store.lower_dirs(&img).map_err(setup)?;

    // A private mount namespace for the bench (and so for every contender).
    if threads() != 1 {
        return Err(setup(
            "IMAGE: the bench must start single-threaded to get its own mount namespace",
        ));
    }
    let rootfs = work.join("rootfs");
    std::fs::create_dir_all(&rootfs)
        .map_err(|e| Error::io(format!("mkdir {}", rootfs.display()), e))?;
    let cs = |s: &str| CString::new(s).map_err(setup);
    let lowerdir: Vec<String> = lower.iter().map(|d| d.display().to_string()).collect();
    let data = cs(&format!("lowerdir={}", lowerdir.join(":")))?;
    let target = cs(&rootfs.to_string_lossy())?;
    let (root, overlay) = (cs("/")?, cs("overlay")?);
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) < 0 {
            return Err(Error::io(
                "unshare(CLONE_NEWNS)",
                std::io::Error::last_os_error(),
            ));
        }
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) < 0
        {
            return Err(Error::io("make / private", std::io::Error::last_os_error()));
        }
        if libc::mount(
            overlay.as_ptr(),
            target.as_ptr(),
            overlay.as_ptr(),
            libc::MS_RDONLY | libc::MS_NODEV | libc::MS_NOSUID,
            data.as_ptr().cast(),
        ) < 0
        {
            return Err(Error::io(
                "mount the image's overlay",
                std::io::Error::last_os_error(),
            ));
        }
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut workload = Workload::on_rootfs(
        &rootfs,
        &argv,
        &format!("{} in the image {image}", args.join(" ")),
    )?;
    if let Some(env) = c.env() {
        workload.base["process"]["env"] = serde_json::json!(env);
    }
    if let Some(wd) = c.working_dir().as_ref().filter(|w| w.starts_with('/')) {
        workload.base["process"]["cwd"] = serde_json::json!(wd);
    }
    Ok(FromImage {
        workload,
        store: store_root,
        reference,
        path,
        mount: rootfs,
    })
}

impl Drop for FromImage {
    fn drop(&mut self) {
        if let Ok(p) = CString::new(self.mount.to_string_lossy().as_bytes()) {
            unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
        }
    }
}
