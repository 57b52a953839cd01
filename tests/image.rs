//! The image store, from outside: images built here with the `tar` crate
//! (OCI layouts, oci-archives, docker archives; plain, gzip and zstd
//! layers; multi-platform indexes; hostile layers) are imported into a
//! temporary store per test. Runs as root (mknod, chown, trusted xattrs,
//! overlay mounts in a private mount namespace).

mod common;

use common::*;
use mica::image::{Error, Image, Store};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

// ------------------------------------------------------------------ building images

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hexs(&Sha256::digest(b)))
}

fn hex_of(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Comp {
    None,
    Gzip,
    Zstd,
}

fn compress(tar: &[u8], c: Comp) -> (Vec<u8>, &'static str) {
    match c {
        Comp::None => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            (
                e.finish().unwrap(),
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
        }
        Comp::Zstd => (
            zstd::encode_all(tar, 3).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    }
}

/// A layer tar, entry by entry. Names are written raw (no validation), so
/// hostile archives can be made too.
struct LayerBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl LayerBuilder {
    fn new() -> Self {
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        LayerBuilder { b }
    }

    #[allow(clippy::too_many_arguments)]
    fn raw(
        &mut self,
        kind: tar::EntryType,
        path: &str,
        link: Option<&str>,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        if !xattrs.is_empty() {
            let keys: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
                .collect();
            self.b
                .append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
                .unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        h.set_size(data.len() as u64);
        assert!(path.len() < 100);
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(l) = link {
            assert!(l.len() < 100);
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    fn dir(&mut self, path: &str) -> &mut Self {
        self.raw(
            tar::EntryType::Directory,
            path,
            None,
            b"",
            0o755,
            0,
            0,
            1_600_000_000,
            &[],
        )
    }
    fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.raw(
            tar::EntryType::Regular,
            path,
            None,
            data,
            0o644,
            0,
            0,
            1_600_000_000,
            &[],
        )
    }
    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(
            tar::EntryType::Symlink,
            path,
            Some(target),
            b"",
            0o777,
            0,
            0,
            1_600_000_000,
            &[],
        )
    }
    fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(
            tar::EntryType::Link,
            path,
            Some(target),
            b"",
            0o644,
            0,
            0,
            1_600_000_000,
            &[],
        )
    }
    fn special(&mut self, path: &str, kind: tar::EntryType) -> &mut Self {
        self.raw(kind, path, None, b"", 0o666, 0, 0, 1_600_000_000, &[])
    }
    /// A whole directory tree, as on disk.
    fn tree(&mut self, dir: &Path) -> &mut Self {
        self.b.append_dir_all(".", dir).unwrap();
        self
    }
    fn build(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

struct Blob {
    digest: String,
    bytes: Vec<u8>,
    media_type: String,
}

impl Blob {
    fn new(bytes: Vec<u8>, media_type: &str) -> Blob {
        Blob {
            digest: sha(&bytes),
            bytes,
            media_type: media_type.into(),
        }
    }
    fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

/// One image: its manifest, config and layer blobs.
struct Built {
    manifest: Blob,
    config: Blob,
    layers: Vec<Blob>,
    /// The uncompressed layers (docker archives hold these).
    tars: Vec<Vec<u8>>,
    diff_ids: Vec<String>,
    arch: String,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn build_image(
    layers: &[(Vec<u8>, Comp)],
    arch: &str,
    edit_config: impl FnOnce(&mut Value),
) -> Built {
    let diff_ids: Vec<String> = layers.iter().map(|(t, _)| sha(t)).collect();
    let blobs: Vec<Blob> = layers
        .iter()
        .map(|(t, c)| {
            let (b, mt) = compress(t, *c);
            Blob::new(b, mt)
        })
        .collect();
    let mut config = json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/bin:/usr/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "tests/image.rs"}],
    });
    edit_config(&mut config);
    let config = Blob::new(
        serde_json::to_vec(&config).unwrap(),
        "application/vnd.oci.image.config.v1+json",
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": blobs.iter().map(|b| b.descriptor()).collect::<Vec<_>>(),
    });
    Built {
        manifest: Blob::new(serde_json::to_vec(&manifest).unwrap(), OCI_MANIFEST),
        config,
        layers: blobs,
        tars: layers.iter().map(|(t, _)| t.clone()).collect(),
        diff_ids,
        arch: arch.into(),
    }
}

fn write_blob(dir: &Path, b: &Blob) {
    let p = dir.join("blobs/sha256");
    fs::create_dir_all(&p).unwrap();
    fs::write(p.join(hex_of(&b.digest)), &b.bytes).unwrap();
}

fn write_built_blobs(dir: &Path, img: &Built) {
    write_blob(dir, &img.manifest);
    write_blob(dir, &img.config);
    for l in &img.layers {
        write_blob(dir, l);
    }
}

/// An OCI layout whose index.json lists each image (with its platform and
/// optional ref name).
fn write_layout(dir: &Path, images: &[(&Built, Option<&str>)]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut manifests = Vec::new();
    for (img, refname) in images {
        write_built_blobs(dir, img);
        let mut d = img.manifest.descriptor();
        d["platform"] = json!({"architecture": img.arch, "os": "linux"});
        if let Some(r) = refname {
            d["annotations"] = json!({"org.opencontainers.image.ref.name": r});
        }
        manifests.push(d);
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// An OCI layout whose index.json points at one multi-platform index
/// (Docker manifest-list media type) holding `images`, plus an attestation
/// manifest for unknown/unknown.
fn write_multiplatform_layout(dir: &Path, images: &[&Built], refname: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut manifests = Vec::new();
    for img in images {
        write_built_blobs(dir, img);
        let mut d = img.manifest.descriptor();
        d["mediaType"] = json!("application/vnd.docker.distribution.manifest.v2+json");
        d["platform"] = json!({"architecture": img.arch, "os": "linux"});
        manifests.push(d);
    }
    manifests.push(json!({
        "mediaType": OCI_MANIFEST,
        "digest": format!("sha256:{}", "0".repeat(64)),
        "size": 1,
        "platform": {"architecture": "unknown", "os": "unknown"},
    }));
    let inner = Blob::new(
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json", "manifests": manifests})).unwrap(),
        "application/vnd.docker.distribution.manifest.list.v2+json",
    );
    write_blob(dir, &inner);
    let mut d = inner.descriptor();
    d["annotations"] = json!({"io.containerd.image.name": refname});
    let index = json!({"schemaVersion": 2, "manifests": [d]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Tar up a directory (an oci-archive from a layout).
fn tar_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(fs::File::create(out).unwrap());
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

fn append_bytes(b: &mut tar::Builder<fs::File>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, name, data).unwrap();
}

/// A `docker save` archive. `legacy`: `<id>/layer.tar` + `<config hex>.json`
/// (docker < 25); else layers and config under `blobs/sha256/` with no
/// index.json.
fn write_docker_archive(out: &Path, img: &Built, tags: &[&str], legacy: bool) {
    let mut b = tar::Builder::new(fs::File::create(out).unwrap());
    let config_name = if legacy {
        format!("{}.json", hex_of(&img.config.digest))
    } else {
        format!("blobs/sha256/{}", hex_of(&img.config.digest))
    };
    append_bytes(&mut b, &config_name, &img.config.bytes);
    let mut layers = Vec::new();
    for (i, t) in img.tars.iter().enumerate() {
        let name = if legacy {
            let id = hexs(&Sha256::digest(format!("layer-{i}").as_bytes()));
            append_bytes(&mut b, &format!("{id}/VERSION"), b"1.0");
            format!("{id}/layer.tar")
        } else {
            format!("blobs/sha256/{}", hex_of(&sha(t)))
        };
        append_bytes(&mut b, &name, t);
        layers.push(name);
    }
    let manifest = json!([{"Config": config_name, "RepoTags": tags, "Layers": layers}]);
    append_bytes(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    b.finish().unwrap();
}

fn small_layer(tag: &str) -> Vec<u8> {
    let mut l = LayerBuilder::new();
    l.dir("etc/")
        .file("etc/release", tag.as_bytes())
        .file(&format!("{tag}.txt"), b"x");
    l.build()
}

fn small_image(tag: &str) -> Built {
    build_image(&[(small_layer(tag), Comp::Gzip)], host_arch(), |_| {})
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

fn other_arch() -> &'static str {
    if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    }
}

// ------------------------------------------------------------------ store helpers

struct T {
    tmp: TempDir,
    store: Store,
}

impl T {
    fn new() -> T {
        let tmp = TempDir::new("image");
        let store = Store::open(&tmp.path().join("store")).unwrap();
        T { tmp, store }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    fn root(&self) -> PathBuf {
        self.tmp.path().join("store")
    }
    fn import(&self, p: &Path, name: Option<&str>) -> Image {
        self.store
            .import(p, name, None, false)
            .unwrap_or_else(|e| panic!("import {}: {e}", p.display()))
    }
    /// Every path in the store with its type and size (to compare).
    fn files(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let root = self.root();
        let mut todo = vec![root.clone()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let m = fs::symlink_metadata(e.path()).unwrap();
                let rel = e.path().strip_prefix(&root).unwrap().display().to_string();
                out.insert(
                    rel,
                    format!("{:o} {}", m.mode(), if m.is_file() { m.len() } else { 0 }),
                );
                if m.is_dir() {
                    todo.push(e.path());
                }
            }
        }
        out
    }
    fn layer(&self, diff_id: &str) -> PathBuf {
        self.root().join("layers").join(hex_of(diff_id))
    }
}

/// Mount the image's lower dirs as a read-only overlay in a private mount
/// namespace (`unshare -m`) and run `script` there with $M the mountpoint.
fn in_overlay(store: &Store, img: &Image, script: &str) -> String {
    let lower: Vec<String> = store
        .lower_dirs(img)
        .unwrap()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mnt = TempDir::new("mnt");
    let full = format!(
        "set -e; M={m}; mount -t overlay overlay -o ro,lowerdir={l} $M; {script}",
        m = mnt.path().display(),
        l = lower.join(":")
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &full])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "overlay script failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(host_mounts_containing(&mnt.path().display().to_string()).is_empty());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lgetxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let cp = CString::new(p.as_os_str().as_bytes()).unwrap();
    let cn = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

// ------------------------------------------------------------------ formats

/// Three layers on the busybox rootfs; layer 3 whites out a file and makes
/// a directory opaque. Checked on disk and through a real overlay mount.
#[test]
fn oci_layout_three_layers_with_whiteouts() {
    let t = T::new();
    let l1 = LayerBuilder::new()
        .tree(&fixtures().join("busybox"))
        .build_ref();
    let mut l2 = LayerBuilder::new();
    l2.dir("data/")
        .file("data/keep", b"keep")
        .dir("data/old/")
        .file("data/old/a", b"a")
        .file("data/old/b", b"b")
        .file("etc/motd", b"v2")
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
        );
    let mut l3 = LayerBuilder::new();
    l3.file("etc/.wh.motd", b"")
        .dir("data/old/")
        .file("data/old/.wh..wh..opq", b"")
        .file("data/old/new", b"new")
        .file(".wh..wh.plnk/123", b"aufs")
        .file("bin/.wh.vi", b"");
    let img = build_image(
        &[
            (l1, Comp::Gzip),
            (l2.build(), Comp::Zstd),
            (l3.build(), Comp::None),
        ],
        host_arch(),
        |_| {},
    );
    let dir = t.path("layout");
    write_layout(&dir, &[(&img, Some("test/whiteouts:v1"))]);
    let got = t.import(&dir, None);

    assert_eq!(got.digest, img.manifest.digest);
    assert_eq!(got.names, vec!["test/whiteouts:v1"]);
    assert_eq!(got.config_digest, img.config.digest);
    assert_eq!(got.layers, img.diff_ids);
    assert_eq!(got.platform, format!("linux/{}", host_arch()));
    assert_eq!(
        got.size,
        img.layers.iter().map(|b| b.bytes.len() as u64).sum::<u64>()
    );
    assert!(got.imported_at.ends_with('Z'), "{}", got.imported_at);

    // list / resolve / inspect / config
    assert_eq!(t.store.list().unwrap(), vec![got.clone()]);
    for r in [
        "test/whiteouts:v1".to_string(),
        got.digest.clone(),
        hex_of(&got.digest)[..12].to_string(),
        format!("sha256:{}", &hex_of(&got.digest)[..20]),
        format!("test/whiteouts@{}", got.digest),
    ] {
        assert_eq!(t.store.resolve(&r).unwrap(), got, "resolve {r}");
    }
    assert!(matches!(
        t.store.resolve("test/whiteouts"),
        Err(Error::NotFound(_))
    ));
    let v = t.store.inspect("test/whiteouts:v1").unwrap();
    assert_eq!(v["digest"], json!(got.digest));
    assert_eq!(v["config"]["config"]["Cmd"], json!(["/bin/sh"]));
    assert_eq!(v["layers"], json!(img.diff_ids));
    let cfg = t.store.config(&got).unwrap();
    assert_eq!(cfg.rootfs().diff_ids(), &img.diff_ids);

    // On disk: overlayfs whiteouts and opaque dirs in layer 3.
    let l3dir = t.layer(&img.diff_ids[2]);
    let m = fs::symlink_metadata(l3dir.join("etc/motd")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0);
    assert_eq!(
        lgetxattr(&l3dir.join("data/old"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(
        !l3dir.join(".wh..wh.plnk").exists(),
        "AUFS metadata is dropped"
    );
    assert!(!l3dir.join("etc/.wh.motd").exists());
    // Shared layer manifests exist.
    for d in &img.diff_ids {
        assert!(t
            .root()
            .join("layers")
            .join(format!("{}.manifest", hex_of(d)))
            .is_file());
    }

    // lower_dirs: mountpoints on top, then layers top first.
    let lower = t.store.lower_dirs(&got).unwrap();
    assert_eq!(lower.len(), 4);
    assert_eq!(
        lower[0],
        t.root().join("mountpoints").join(hex_of(&got.digest))
    );
    assert_eq!(lower[1], t.layer(&img.diff_ids[2]));
    assert_eq!(lower[3], t.layer(&img.diff_ids[0]));

    // The merged view, through a real read-only overlay mount.
    let out = in_overlay(
        &t.store,
        &got,
        r#"cd $M
           for p in etc/motd bin/vi bin/busybox data/keep data/old/a data/old/b data/old/new etc/hostname proc dev/pts tmp; do
             if [ -e $p ] || [ -L $p ]; then echo "$p yes"; else echo "$p no"; fi
           done
           echo "old: $(ls -A data/old | tr '\n' ' ')"
           echo "passwd: $(grep -c : etc/passwd)"
           echo "busybox: $(./bin/busybox true && echo runs)"
           touch etc/x 2>/dev/null && echo writable || echo readonly"#,
    );
    for line in [
        "etc/motd no",
        "bin/vi no",
        "bin/busybox yes",
        "data/keep yes",
        "data/old/a no",
        "data/old/b no",
        "data/old/new yes",
        "etc/hostname yes",
        "proc yes",
        "dev/pts yes",
        "tmp yes",
        "old: new ",
        "passwd: 2",
        "busybox: runs",
        "readonly",
    ] {
        assert!(
            out.lines().any(|l| l.trim_end() == line.trim_end()),
            "missing {line:?} in:\n{out}"
        );
    }
    assert!(t.store.verify("test/whiteouts:v1").unwrap().is_empty());
}

trait BuildRef {
    fn build_ref(&mut self) -> Vec<u8>;
}
impl BuildRef for LayerBuilder {
    fn build_ref(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

/// oci-archive (plain and gzip-compressed), docker archives (legacy and
/// blobs/ layout), names from the archive or given.
#[test]
fn archives_of_every_kind() {
    let t = T::new();
    let img = build_image(
        &[
            (small_layer("base"), Comp::Gzip),
            (small_layer("top"), Comp::Zstd),
        ],
        host_arch(),
        |_| {},
    );
    let layout = t.path("layout");
    write_layout(&layout, &[(&img, Some("archive/oci:1"))]);
    let ar = t.path("oci.tar");
    tar_dir(&layout, &ar);
    let a = t.import(&ar, None);
    assert_eq!(a.digest, img.manifest.digest);
    assert_eq!(a.names, vec!["archive/oci:1"]);

    // The same archive gzip'd, imported under another name: same image.
    let gz = t.path("oci.tar.gz");
    let (bytes, _) = compress(&fs::read(&ar).unwrap(), Comp::Gzip);
    fs::write(&gz, bytes).unwrap();
    let b = t.import(&gz, Some("again"));
    assert_eq!(b.digest, a.digest);
    assert_eq!(b.names, vec!["again:latest", "archive/oci:1"]);

    // docker save, legacy layout: uncompressed layers, RepoTags.
    let dimg = build_image(
        &[
            (small_layer("d1"), Comp::None),
            (small_layer("d2"), Comp::None),
        ],
        host_arch(),
        |c| c["config"]["ExposedPorts"] = json!({"80/tcp": {}}),
    );
    let dock = t.path("docker.tar");
    write_docker_archive(&dock, &dimg, &["docker.io/library/legacy:2"], true);
    let d = t.import(&dock, None);
    assert_eq!(d.names, vec!["legacy:2"]);
    assert_eq!(d.layers, dimg.diff_ids);
    assert_eq!(d.config_digest, dimg.config.digest);
    // Re-importing gives the same (synthesized) manifest digest.
    assert_eq!(t.import(&dock, None).digest, d.digest);
    assert!(t.store.verify("legacy:2").unwrap().is_empty());
    let man: Value = serde_json::from_slice(
        &fs::read(t.root().join("blobs/sha256").join(hex_of(&d.digest))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        man["layers"][0]["mediaType"],
        json!("application/vnd.oci.image.layer.v1.tar")
    );

    // docker save, blobs/ layout without index.json.
    let dock2 = t.path("docker2.tar");
    write_docker_archive(&dock2, &dimg, &["newer:1"], false);
    let d2 = t.import(&dock2, None);
    assert_eq!(
        d2.digest, d.digest,
        "same content, same synthesized manifest"
    );
    assert_eq!(t.store.resolve("newer:1").unwrap().digest, d.digest);

    // A directory holding an extracted docker archive works too.
    assert_eq!(t.store.list().unwrap().len(), 2);

    // Not an image at all.
    let empty = t.path("empty");
    fs::create_dir(&empty).unwrap();
    let e = t.store.import(&empty, None, None, false).unwrap_err();
    assert!(e.to_string().contains("not an OCI image layout"), "{e}");
    let junk = t.path("junk.tar");
    fs::write(
        &junk,
        b"this is not a tar archive, not at all, and long enough",
    )
    .unwrap();
    assert!(t.store.import(&junk, None, None, false).is_err());
}

/// A multi-platform index resolves to the host's platform, or to the one
/// asked for; a clear error lists what it offers.
#[test]
fn multi_platform_index() {
    let t = T::new();
    let host = small_image("host");
    let other = build_image(&[(small_layer("other"), Comp::Gzip)], other_arch(), |_| {});
    let dir = t.path("multi");
    write_multiplatform_layout(&dir, &[&other, &host], "docker.io/library/multi:1");
    let ar = t.path("multi.tar");
    tar_dir(&dir, &ar);

    let a = t.import(&ar, None);
    assert_eq!(a.digest, host.manifest.digest);
    assert_eq!(a.platform, format!("linux/{}", host_arch()));
    assert_eq!(a.names, vec!["multi:1"]);

    let b = t
        .store
        .import(
            &ar,
            Some("multi:other"),
            Some(&format!("linux/{}", other_arch())),
            false,
        )
        .unwrap();
    assert_eq!(b.digest, other.manifest.digest);
    assert_eq!(b.platform, format!("linux/{}", other_arch()));

    let e = t
        .store
        .import(&ar, None, Some("linux/s390x"), false)
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Platform { .. }), "{msg}");
    assert!(
        msg.contains("linux/s390x") && msg.contains("linux/amd64") && msg.contains("linux/arm64"),
        "{msg}"
    );
    assert!(!msg.contains("unknown"), "{msg}");
    assert!(t.store.import(&ar, None, Some("nonsense"), false).is_err());

    // A single-platform image for another architecture is refused unless asked for.
    let lone = t.path("lone");
    write_layout(&lone, &[(&other, None)]);
    let e = t.store.import(&lone, None, None, false).unwrap_err();
    assert!(
        e.to_string().contains(&format!("linux/{}", other_arch())),
        "{e}"
    );
    t.store
        .import(&lone, None, Some(&format!("linux/{}", other_arch())), false)
        .unwrap();

    // An index listing two tagged images: a name picks one.
    let two = t.path("two");
    let x = small_image("x");
    let y = small_image("y");
    write_layout(&two, &[(&x, Some("1.0")), (&y, Some("2.0"))]);
    let e = t.store.import(&two, None, None, false).unwrap_err();
    assert!(e.to_string().contains("pass a name"), "{e}");
    assert_eq!(
        t.store
            .import(&two, Some("two:2.0"), None, false)
            .unwrap()
            .digest,
        y.manifest.digest
    );

    // One manifest under two full names: the image gets both.
    let same = t.path("same");
    write_layout(
        &same,
        &[(&x, Some("same/x:1")), (&x, Some("same/x:latest"))],
    );
    let got = t.import(&same, None);
    assert_eq!(got.digest, x.manifest.digest);
    assert_eq!(got.names, vec!["same/x:1", "same/x:latest"]);
}

// ------------------------------------------------------------------ verification at import

#[test]
fn corrupt_blobs_and_wrong_diff_ids_leave_nothing() {
    let t = T::new();
    let good = t.path("good");
    write_layout(&good, &[(&small_image("good"), Some("good:1"))]);
    t.import(&good, None);
    let before = t.files();

    let check = |dir: &Path, want: &str| {
        let e = t.store.import(dir, None, None, false).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(want), "{want:?} not in {msg:?}");
        assert_eq!(t.files(), before, "the store changed after: {msg}");
    };

    // A flipped byte in the top layer blob (after a good bottom layer).
    let img = build_image(
        &[
            (small_layer("bottom"), Comp::Gzip),
            (small_layer("flip"), Comp::Gzip),
        ],
        host_arch(),
        |_| {},
    );
    let dir = t.path("flip");
    write_layout(&dir, &[(&img, None)]);
    let p = dir.join("blobs/sha256").join(hex_of(&img.layers[1].digest));
    let mut b = fs::read(&p).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    fs::write(&p, b).unwrap();
    check(
        &dir,
        &format!("layer {} has digest sha256:", img.layers[1].digest),
    );

    // A flipped byte in the config.
    let img = small_image("cfg");
    let dir = t.path("cfg");
    write_layout(&dir, &[(&img, None)]);
    let p = dir.join("blobs/sha256").join(hex_of(&img.config.digest));
    let mut b = fs::read(&p).unwrap();
    b[5] ^= 1;
    fs::write(&p, b).unwrap();
    check(&dir, &format!("config {} has digest", img.config.digest));

    // A layer whose content is fine but whose diff_id is not.
    let img = build_image(&[(small_layer("diff"), Comp::Zstd)], host_arch(), |c| {
        c["rootfs"]["diff_ids"] = json!([format!("sha256:{}", "1".repeat(64))])
    });
    let dir = t.path("diff");
    write_layout(&dir, &[(&img, None)]);
    check(
        &dir,
        &format!(
            "layer {} unpacks to {}",
            img.layers[0].digest,
            sha(&small_layer("diff"))
        ),
    );

    // The same in a docker archive (uncompressed layer: its digest is the diff_id).
    let dock = t.path("diff.tar");
    write_docker_archive(&dock, &img, &["bad:1"], true);
    check(&dock, "the image config says its diff_id is sha256:1111");

    // A descriptor size that lies.
    let img = small_image("size");
    let dir = t.path("size");
    write_layout(&dir, &[(&img, None)]);
    let mut m: Value = serde_json::from_slice(&img.manifest.bytes).unwrap();
    m["layers"][0]["size"] = json!(3);
    let mb = Blob::new(serde_json::to_vec(&m).unwrap(), OCI_MANIFEST);
    write_blob(&dir, &mb);
    let index = json!({"schemaVersion": 2, "manifests": [mb.descriptor()]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    check(&dir, "bytes, the manifest says 3");

    // A docker archive cut short in its last member: said so, not a
    // misleading digest or diff_id mismatch.
    let img = small_image("trunc");
    let whole = t.path("whole.tar");
    write_docker_archive(&whole, &img, &["trunc:1"], true);
    let b = fs::read(&whole).unwrap();
    // Halfway into the data of the archive's last member.
    let mut ar = tar::Archive::new(std::io::Cursor::new(&b));
    let (pos, size) = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.header().entry_type().is_file() && e.size() > 1)
        .map(|e| (e.raw_file_position(), e.size()))
        .last()
        .unwrap();
    let cut = t.path("cut.tar");
    fs::write(&cut, &b[..(pos + size / 2) as usize]).unwrap();
    check(&cut, "truncated");

    // A FIFO planted as a blob: refused, not waited on (the import runs as a
    // command so that a hang is a failure, not a stuck test).
    let img = small_image("fifo");
    let dir = t.path("fifo");
    write_layout(&dir, &[(&img, None)]);
    let blob = dir.join("blobs/sha256").join(hex_of(&img.layers[0].digest));
    fs::remove_file(&blob).unwrap();
    let c = CString::new(blob.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut child = Command::new(mica_bin())
        .arg("--store")
        .arg(t.root())
        .args(["image", "import"])
        .arg(&dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("import of a layout with a FIFO blob hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is not a regular file"),
        "{err}"
    );
    assert_eq!(t.files(), before, "the store changed after: {err}");

    // A missing blob.
    let img = small_image("missing");
    let dir = t.path("missing");
    write_layout(&dir, &[(&img, None)]);
    fs::remove_file(dir.join("blobs/sha256").join(hex_of(&img.layers[0].digest))).unwrap();
    check(&dir, "is missing");

    // A layer that is not a tar at all.
    let img = build_image(
        &[(b"garbage garbage".repeat(100), Comp::Gzip)],
        host_arch(),
        |_| {},
    );
    let dir = t.path("garbage");
    write_layout(&dir, &[(&img, None)]);
    let e = t.store.import(&dir, None, None, false).unwrap_err();
    assert!(e.to_string().contains(&img.layers[0].digest), "{e}");
    assert_eq!(t.files(), before);
}

// ------------------------------------------------------------------ hostile layers

/// A directory outside the store that no import may touch.
struct Sentinel {
    _tmp: TempDir,
    dir: PathBuf,
}

impl Sentinel {
    fn new() -> Sentinel {
        let tmp = TempDir::new("sentinel");
        let dir = tmp.path().join("s");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("secret"), b"secret").unwrap();
        Sentinel { _tmp: tmp, dir }
    }
    fn state(&self) -> Vec<(String, u64, u64, Vec<u8>)> {
        let mut v: Vec<_> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let m = fs::symlink_metadata(e.path()).unwrap();
                let data = if m.is_file() {
                    fs::read(e.path()).unwrap()
                } else {
                    vec![]
                };
                (
                    e.file_name().to_string_lossy().into_owned(),
                    m.nlink(),
                    m.mode() as u64,
                    data,
                )
            })
            .collect();
        v.sort();
        v
    }
}

#[test]
fn hostile_layers_are_refused_or_neutralised() {
    use tar::EntryType as E;
    let t = T::new();
    let s = Sentinel::new();
    let sd = s.dir.display().to_string();
    let sentinel_before = s.state();
    let store_before = t.files();
    let host_passwd = fs::read("/etc/passwd").unwrap();

    // (name, layer, expected error substring or None = imported, neutralised)
    type Case = (&'static str, Vec<u8>, Option<&'static str>);
    let mut cases: Vec<Case> = Vec::new();
    let mk = |f: &dyn Fn(&mut LayerBuilder)| {
        let mut l = LayerBuilder::new();
        f(&mut l);
        l.build()
    };
    let dotdot = format!("../../../../../../..{sd}/dotdot");
    cases.push((
        "dotdot",
        mk(&|l| {
            l.file(&dotdot, b"x");
        }),
        Some("\"..\" component"),
    ));
    cases.push((
        "dotdot-middle",
        mk(&|l| {
            l.file("a/../../b", b"x");
        }),
        Some("\"..\" component"),
    ));
    let abs = format!("{sd}/absolute");
    cases.push((
        "absolute",
        mk(&|l| {
            l.file(&abs, b"x");
        }),
        None,
    ));
    let sd2 = sd.clone();
    cases.push((
        "symlink-then-beneath",
        mk(&|l| {
            l.symlink("link", &sd2).file("link/pwned", b"x");
        }),
        Some("symlink to a missing directory"),
    ));
    cases.push((
        "symlink-to-root-then-beneath",
        mk(&|l| {
            l.symlink("rootlink", "/")
                .dir("etc/")
                .file("rootlink/etc/passwd", b"neutralised");
        }),
        None,
    ));
    cases.push((
        "symlink-relative-escape",
        mk(&|l| {
            l.symlink("up", "../../../../../../../../..")
                .dir("etc/")
                .file("up/etc/passwd", b"neutralised");
        }),
        None,
    ));
    cases.push((
        "symlink-named-dot",
        mk(&|l| {
            l.symlink(".", "/");
        }),
        Some("root entry is not a directory"),
    ));
    let secret = format!("{sd}/secret");
    cases.push((
        "symlink-then-overwrite",
        mk(&|l| {
            l.symlink("evil", &secret).file("evil", b"overwritten");
        }),
        None,
    ));
    cases.push((
        "hardlink-dotdot",
        mk(&|l| {
            l.hardlink("h", "../../x");
        }),
        Some("\"..\" component"),
    ));
    let secret2 = secret.clone();
    cases.push((
        "hardlink-absolute",
        mk(&|l| {
            l.hardlink("h", &secret2);
        }),
        Some("is not in this layer"),
    ));
    let sd3 = sd.clone();
    cases.push((
        "hardlink-through-symlink",
        mk(&|l| {
            l.symlink("sl", &sd3).hardlink("h", "sl/secret");
        }),
        Some("goes through a symlink"),
    ));
    cases.push((
        "hardlink-through-inlayer-symlink",
        mk(&|l| {
            l.dir("d/")
                .file("d/f", b"f")
                .symlink("sl", "d")
                .hardlink("h", "sl/f");
        }),
        Some("goes through a symlink"),
    ));
    let sd4 = sd.clone();
    cases.push((
        "whiteout-through-symlink",
        mk(&|l| {
            l.symlink("wl", &sd4).file("wl/.wh.secret", b"");
        }),
        Some("symlink to a missing directory"),
    ));
    cases.push((
        "opaque-through-symlink",
        mk(&|l| {
            l.symlink("ol", "/")
                .dir("d/")
                .file("ol/d/.wh..wh..opq", b"");
        }),
        None,
    ));
    cases.push((
        "chardev",
        mk(&|l| {
            l.special("dev/evil", E::Char);
        }),
        Some("character device"),
    ));
    cases.push((
        "blockdev",
        mk(&|l| {
            l.special("dev/sda", E::Block);
        }),
        Some("block device"),
    ));
    cases.push((
        "fifo",
        mk(&|l| {
            l.special("run/fifo", E::Fifo);
        }),
        Some("fifo"),
    ));
    cases.push((
        "dir-replaced-by-file",
        mk(&|l| {
            l.dir("d/").file("d", b"x");
        }),
        Some("would replace a directory"),
    ));

    for (name, layer, want) in cases {
        let img = build_image(
            &[(small_layer("ok"), Comp::Gzip), (layer, Comp::Gzip)],
            host_arch(),
            |_| {},
        );
        let dir = t.path(name);
        write_layout(&dir, &[(&img, None)]);
        let before = t.files();
        let res = t.store.import(&dir, None, None, false);
        match (want, res) {
            (Some(w), Err(e)) => {
                let msg = e.to_string();
                assert!(msg.contains(w), "{name}: {w:?} not in {msg:?}");
                assert!(
                    msg.contains(&img.layers[1].digest),
                    "{name}: the error names the layer: {msg}"
                );
                assert_eq!(t.files(), before, "{name}: the store changed");
            }
            (Some(w), Ok(_)) => panic!("{name}: imported, expected an error with {w:?}"),
            (None, Err(e)) => panic!("{name}: refused: {e}"),
            (None, Ok(got)) => {
                let ldir = t.layer(&got.layers[1]);
                match name {
                    "absolute" => assert_eq!(
                        fs::read(ldir.join(abs.trim_start_matches('/'))).unwrap(),
                        b"x"
                    ),
                    "symlink-to-root-then-beneath" | "symlink-relative-escape" => {
                        assert_eq!(fs::read(ldir.join("etc/passwd")).unwrap(), b"neutralised")
                    }
                    "opaque-through-symlink" => {
                        assert_eq!(
                            lgetxattr(&ldir.join("d"), "trusted.overlay.opaque").as_deref(),
                            Some(&b"y"[..])
                        )
                    }
                    "symlink-then-overwrite" => {
                        let m = fs::symlink_metadata(ldir.join("evil")).unwrap();
                        assert!(m.is_file());
                        assert_eq!(fs::read(ldir.join("evil")).unwrap(), b"overwritten");
                    }
                    _ => unreachable!(),
                }
                assert!(t.store.verify(&got.digest).unwrap().is_empty());
            }
        }
        assert_eq!(s.state(), sentinel_before, "{name}: the sentinel changed");
        assert_eq!(
            fs::read("/etc/passwd").unwrap(),
            host_passwd,
            "{name}: /etc/passwd changed"
        );
    }
    // Every refused import left nothing: only the neutralised ones added images.
    assert_eq!(t.store.list().unwrap().len(), 5);
    t.store.prune().unwrap();
    assert!(store_before.keys().all(|k| t.files().contains_key(k)));
}

// ------------------------------------------------------------------ metadata

#[test]
fn ownership_modes_times_and_xattrs_are_kept() {
    use tar::EntryType as E;
    let t = T::new();
    // security.capability v2: cap_net_bind_service, effective.
    let mut cap = vec![0u8; 20];
    cap[..4].copy_from_slice(&0x0200_0001u32.to_le_bytes());
    cap[4..8].copy_from_slice(&(1u32 << 10).to_le_bytes());
    let mut l = LayerBuilder::new();
    l.raw(
        E::Directory,
        "srv/",
        None,
        b"",
        0o2750,
        5,
        6,
        1_000_000_000,
        &[("user.dir", b"d")],
    )
    .raw(
        E::Regular,
        "srv/suid",
        None,
        b"#!/bin/sh\n",
        0o4755,
        1000,
        1001,
        1_234_567_890,
        &[
            ("user.test", b"hello"),
            ("security.capability", &cap),
            ("trusted.overlay.redirect", b"/etc"),
        ],
    )
    .raw(
        E::Symlink,
        "srv/link",
        Some("suid"),
        b"",
        0o777,
        7,
        8,
        1_111_111_111,
        &[],
    )
    .raw(
        E::Link,
        "srv/hard",
        Some("srv/suid"),
        b"",
        0o644,
        0,
        0,
        0,
        &[],
    )
    .raw(
        E::Directory,
        "sticky/",
        None,
        b"",
        0o1777,
        0,
        0,
        1_500_000_000,
        &[],
    )
    .raw(
        E::Regular,
        "sticky/big-uid",
        None,
        b"x",
        0o600,
        100_000,
        100_000,
        1_500_000_001,
        &[],
    );
    let long = format!("deep/{}/{}", "d".repeat(120), "f".repeat(150));
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o640);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    l.b.append_data(&mut h, &long, &b"long"[..]).unwrap();
    // Blank numeric fields (uid, gid, mtime) read as 0.
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(E::Symlink);
    h.set_size(0);
    l.b.append_link(&mut h, "deep/longlink", format!("/{}", "t".repeat(200)))
        .unwrap();
    let img = build_image(&[(l.build(), Comp::Zstd)], host_arch(), |_| {});
    let dir = t.path("meta");
    write_layout(&dir, &[(&img, None)]);
    let got = t.import(&dir, Some("meta"));
    let ld = t.layer(&got.layers[0]);

    let m = fs::symlink_metadata(ld.join("srv")).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime()),
        (0o2750, 5, 6, 1_000_000_000)
    );
    assert_eq!(
        lgetxattr(&ld.join("srv"), "user.dir").as_deref(),
        Some(&b"d"[..])
    );
    let m = fs::symlink_metadata(ld.join("srv/suid")).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime()),
        (0o4755, 1000, 1001, 1_234_567_890)
    );
    assert_eq!(m.nlink(), 2, "the hard link shares the inode");
    assert_eq!(
        fs::symlink_metadata(ld.join("srv/hard")).unwrap().ino(),
        m.ino()
    );
    assert_eq!(
        lgetxattr(&ld.join("srv/suid"), "user.test").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        lgetxattr(&ld.join("srv/suid"), "security.capability").as_deref(),
        Some(&cap[..])
    );
    assert_eq!(
        lgetxattr(&ld.join("srv/suid"), "trusted.overlay.redirect"),
        None,
        "overlay xattrs from the archive are dropped"
    );
    let m = fs::symlink_metadata(ld.join("srv/link")).unwrap();
    assert!(m.file_type().is_symlink());
    assert_eq!((m.uid(), m.gid(), m.mtime()), (7, 8, 1_111_111_111));
    assert_eq!(
        fs::read_link(ld.join("srv/link")).unwrap(),
        Path::new("suid")
    );
    let m = fs::symlink_metadata(ld.join("sticky")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o1777, 1_500_000_000));
    let m = fs::symlink_metadata(ld.join("sticky/big-uid")).unwrap();
    assert_eq!((m.uid(), m.gid()), (100_000, 100_000));

    assert_eq!(fs::read(ld.join(&long)).unwrap(), b"long");
    assert_eq!(fs::metadata(ld.join(&long)).unwrap().mode() & 0o7777, 0o640);
    assert_eq!(
        fs::read_link(ld.join("deep/longlink")).unwrap(),
        PathBuf::from(format!("/{}", "t".repeat(200)))
    );

    // Mountpoints: everything the image lacks, nothing it has.
    let mp = t.root().join("mountpoints").join(hex_of(&got.digest));
    for d in [
        "proc",
        "sys",
        "dev/pts",
        "dev/shm",
        "dev/mqueue",
        "tmp",
        "run",
        "etc",
    ] {
        assert!(mp.join(d).is_dir(), "{d}");
    }
    for f in ["etc/hostname", "etc/hosts", "etc/resolv.conf"] {
        assert!(mp.join(f).is_file(), "{f}");
    }
    assert!(!mp.join("srv").exists());
    assert_eq!(
        fs::metadata(mp.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert!(t.store.verify("meta").unwrap().is_empty());
}

/// The mountpoints layer respects what the merged image holds: symlinks,
/// files, whiteouts and the image's own directory attributes.
#[test]
fn mountpoints_follow_the_merged_image() {
    use tar::EntryType as E;
    let t = T::new();
    let mut l1 = LayerBuilder::new();
    l1.symlink("dev", "/somewhere")
        .file("tmp", b"a file")
        .dir("run/")
        .dir("proc/")
        .dir("etc/")
        .file("etc/hosts", b"127.0.0.1 localhost\n");
    let mut l2 = LayerBuilder::new();
    l2.file(".wh.run", b"")
        .raw(
            E::Directory,
            "etc/",
            None,
            b"",
            0o700,
            3,
            4,
            1_200_000_000,
            &[],
        )
        .file("etc/.wh.hosts", b"");
    let img = build_image(
        &[(l1.build(), Comp::None), (l2.build(), Comp::Gzip)],
        host_arch(),
        |_| {},
    );
    let dir = t.path("mp");
    write_layout(&dir, &[(&img, None)]);
    let got = t.import(&dir, None);
    assert!(got.names.is_empty());
    let mp = t.root().join("mountpoints").join(hex_of(&got.digest));
    let mut present: Vec<String> = Vec::new();
    for p in [
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "etc",
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
    ] {
        if fs::symlink_metadata(mp.join(p)).is_ok() {
            present.push(p.into());
        }
    }
    assert_eq!(
        present,
        [
            "sys",
            "run",
            "etc",
            "etc/hostname",
            "etc/hosts",
            "etc/resolv.conf"
        ]
    );
    let m = fs::metadata(mp.join("etc")).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime()),
        (0o700, 3, 4, 1_200_000_000)
    );

    let out = in_overlay(
        &t.store,
        &got,
        r#"cd $M; [ -L dev ] && echo dev-symlink; [ -f tmp ] && echo tmp-file; [ -d run ] && echo run-dir;
           [ -f etc/hosts ] && [ ! -s etc/hosts ] && echo hosts-empty; stat -c '%a %u' etc"#,
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        [
            "dev-symlink",
            "tmp-file",
            "run-dir",
            "hosts-empty",
            "700",
            "3"
        ]
    );
}

// ------------------------------------------------------------------ concurrency

#[test]
fn concurrent_imports_share_layers() {
    let t = T::new();
    let base = LayerBuilder::new()
        .tree(&fixtures().join("probe-only"))
        .build_ref();
    let a = build_image(
        &[(base.clone(), Comp::Gzip), (small_layer("a"), Comp::Gzip)],
        host_arch(),
        |_| {},
    );
    let b = build_image(
        &[(base.clone(), Comp::Gzip), (small_layer("b"), Comp::Zstd)],
        host_arch(),
        |_| {},
    );
    let (pa, pb) = (t.path("a.tar"), t.path("b.tar"));
    for (img, p, n) in [(&a, &pa, "a"), (&b, &pb, "b")] {
        let d = t.path(&format!("{n}-layout"));
        write_layout(&d, &[(img, Some(&format!("conc/{n}:1")))]);
        tar_dir(&d, p);
    }
    let results: Vec<Image> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let p = if i % 3 == 2 { &pb } else { &pa };
                let store = &t.store;
                s.spawn(move || store.import(p, None, None, false).unwrap())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in results.iter().enumerate() {
        let want = if i % 3 == 2 { &b } else { &a };
        assert_eq!(r.digest, want.manifest.digest);
    }
    let mut layers: Vec<String> = fs::read_dir(t.root().join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".manifest"))
        .collect();
    layers.sort();
    let mut want: Vec<String> = [&a.diff_ids[..], &b.diff_ids[1..]]
        .concat()
        .iter()
        .map(|d| hex_of(d).to_string())
        .collect();
    want.sort();
    assert_eq!(layers, want, "one copy of each layer, nothing else");
    assert!(
        !t.files().keys().any(|k| k.contains(".tmp-")),
        "no leftovers: {:?}",
        t.files().keys()
    );
    assert_eq!(t.store.list().unwrap().len(), 2);
    assert!(t.store.verify("conc/a:1").unwrap().is_empty());
    assert!(t.store.verify("conc/b:1").unwrap().is_empty());
}

/// `import` in a child process (this test binary, running
/// `killed_import_child`), SIGKILLed at increasing delays: the store only
/// ever holds complete, valid images plus `.tmp-*` leftovers, which prune
/// removes; a later import works.
#[test]
fn killed_imports_leave_only_tmp_entries() {
    let t = T::new();
    let l1 = LayerBuilder::new()
        .tree(&fixtures().join("busybox"))
        .build_ref();
    let img = build_image(
        &[(l1, Comp::Gzip), (small_layer("killed"), Comp::Zstd)],
        host_arch(),
        |_| {},
    );
    let dir = t.path("layout");
    write_layout(&dir, &[(&img, Some("killed:1"))]);
    let child = || {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "killed_import_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MICA_TEST_CHILD_STORE", t.root())
            .env("MICA_TEST_CHILD_SRC", &dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long a whole child import takes here and now.
    let start = std::time::Instant::now();
    assert!(child().wait().unwrap().success(), "the child import failed");
    let whole = start.elapsed();
    t.store.remove("killed:1", &Default::default()).unwrap();
    t.store.prune().unwrap();
    let mut completed = 0;
    for i in 0..14 {
        let mut c = child();
        std::thread::sleep(whole * i / 12);
        let _ = c.kill();
        let st = c.wait().unwrap();
        if st.success() {
            completed += 1;
        }
        // Whatever is visible is complete and valid.
        for im in t.store.list().unwrap() {
            assert!(t.store.verify(&im.digest).unwrap().is_empty(), "round {i}");
        }
        for e in fs::read_dir(t.root().join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(".tmp-") {
                assert_eq!(
                    sha(&fs::read(e.path()).unwrap()),
                    format!("sha256:{name}"),
                    "round {i}"
                );
            }
        }
        for e in fs::read_dir(t.root().join("layers")).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if !name.starts_with(".tmp-") && !name.ends_with(".manifest") {
                assert!(
                    t.root()
                        .join("layers")
                        .join(format!("{name}.manifest"))
                        .is_file(),
                    "round {i}"
                );
            }
        }
        // Leftovers only under .tmp-* names, and prune clears them (unless
        // the image is complete, prune then removes everything).
        t.store.prune().unwrap();
        assert!(!t.files().keys().any(|k| k.contains(".tmp-")), "round {i}");
        if t.store.list().unwrap().is_empty() {
            assert_eq!(
                fs::read_dir(t.root().join("layers")).unwrap().count(),
                0,
                "round {i}"
            );
        } else {
            t.store.remove("killed:1", &Default::default()).unwrap();
            t.store.prune().unwrap();
        }
    }
    eprintln!("{completed} of 14 child imports completed before the kill (a whole one: {whole:?})");
    let got = t.import(&dir, None);
    assert!(t.store.verify(&got.digest).unwrap().is_empty());
}

/// The child of `killed_imports_leave_only_tmp_entries` (a no-op otherwise).
#[test]
fn killed_import_child() {
    let (Some(root), Some(src)) = (
        std::env::var_os("MICA_TEST_CHILD_STORE"),
        std::env::var_os("MICA_TEST_CHILD_SRC"),
    ) else {
        return;
    };
    let store = Store::open(Path::new(&root)).unwrap();
    store.import(Path::new(&src), None, None, false).unwrap();
}

// ------------------------------------------------------------------ verify, prune, remove, tag

#[test]
fn verify_finds_changes() {
    let t = T::new();
    let mut l = LayerBuilder::new();
    l.dir("bin/").raw(
        tar::EntryType::Regular,
        "bin/tool",
        None,
        b"tool v1",
        0o755,
        0,
        0,
        1,
        &[],
    );
    let img = build_image(&[(l.build(), Comp::Gzip)], host_arch(), |_| {});
    let dir = t.path("v");
    write_layout(&dir, &[(&img, Some("verify:1"))]);
    let got = t.import(&dir, None);
    assert_eq!(t.store.verify("verify:1").unwrap(), Vec::<String>::new());

    let ld = t.layer(&got.layers[0]);
    fs::write(ld.join("bin/tool"), b"tool v2").unwrap();
    let p = t.store.verify("verify:1").unwrap();
    assert!(
        p.iter()
            .any(|x| x.contains("bin/tool") && x.contains("content changed")),
        "{p:?}"
    );

    fs::write(ld.join("bin/tool"), b"tool v1").unwrap();
    std::os::unix::fs::chown(ld.join("bin/tool"), Some(0), Some(0)).unwrap();
    fs::set_permissions(
        ld.join("bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    fs::write(ld.join("bin/added"), b"").unwrap();
    let p = t.store.verify("verify:1").unwrap();
    assert!(
        p.iter()
            .any(|x| x.contains("bin/tool") && x.contains("mode 4755")),
        "{p:?}"
    );
    assert!(p.iter().any(|x| x.contains("bin/added was added")), "{p:?}");

    // A damaged blob is reported too.
    let bp = t
        .root()
        .join("blobs/sha256")
        .join(hex_of(&img.layers[0].digest));
    let mut b = fs::read(&bp).unwrap();
    b[10] ^= 1;
    fs::write(&bp, b).unwrap();
    let p = t.store.verify("verify:1").unwrap();
    assert!(
        p.iter()
            .any(|x| x.contains(&img.layers[0].digest) && x.contains("has digest")),
        "{p:?}"
    );
}

#[test]
fn tag_remove_and_prune() {
    let t = T::new();
    let shared = small_layer("shared");
    let a = build_image(
        &[
            (shared.clone(), Comp::Gzip),
            (small_layer("only-a"), Comp::Gzip),
        ],
        host_arch(),
        |_| {},
    );
    let b = build_image(
        &[
            (shared.clone(), Comp::Gzip),
            (small_layer("only-b"), Comp::Gzip),
        ],
        host_arch(),
        |_| {},
    );
    let (da, db) = (t.path("a"), t.path("b"));
    write_layout(&da, &[(&a, Some("img/a:1"))]);
    write_layout(&db, &[(&b, Some("img/b:1"))]);
    let ia = t.import(&da, None);
    let ib = t.import(&db, None);

    // tag
    t.store.tag("img/a:1", "alias").unwrap();
    assert_eq!(t.store.resolve("alias").unwrap().digest, ia.digest);
    assert_eq!(
        t.store.resolve("alias:latest").unwrap().names,
        vec!["alias:latest", "img/a:1"]
    );
    // Moving a name to another image.
    t.store.tag(&ib.digest, "alias").unwrap();
    assert_eq!(t.store.resolve("alias").unwrap().digest, ib.digest);
    assert_eq!(t.store.resolve("img/a:1").unwrap().names, vec!["img/a:1"]);
    assert!(t.store.tag("img/a:1", "Bad Name").is_err());
    assert!(matches!(t.store.tag("nope", "x"), Err(Error::NotFound(_))));

    // remove: a name, then the last name removes the image.
    t.store.tag("img/a:1", "second").unwrap();
    t.store.remove("img/a:1", &Default::default()).unwrap();
    assert_eq!(t.store.resolve("second").unwrap().digest, ia.digest);
    t.store.remove("second", &Default::default()).unwrap();
    assert!(matches!(
        t.store.resolve(&ia.digest),
        Err(Error::NotFound(_))
    ));
    assert_eq!(t.store.list().unwrap().len(), 1);
    assert!(matches!(
        t.store.remove("second", &Default::default()),
        Err(Error::NotFound(_))
    ));

    // Leftovers of a killed import.
    fs::create_dir_all(t.root().join(".tmp-killed/layer-x")).unwrap();
    fs::create_dir_all(t.root().join("layers/.tmp-killed")).unwrap();
    fs::write(t.root().join("blobs/sha256/.tmp-killed"), b"").unwrap();
    assert_eq!(t.store.list().unwrap().len(), 1, "leftovers are ignored");

    // prune: a's own layer, blobs, mountpoints and the leftovers go.
    let removed = t.store.prune().unwrap();
    let has = |s: &str| removed.iter().any(|r| r.contains(s));
    assert!(has(&format!("layer {}", a.diff_ids[1])), "{removed:?}");
    assert!(has(&format!("blob {}", a.manifest.digest)), "{removed:?}");
    assert!(has(&format!("blob {}", a.layers[1].digest)), "{removed:?}");
    assert!(has(&format!("mountpoints {}", ia.digest)), "{removed:?}");
    assert!(has(".tmp-killed"), "{removed:?}");
    assert!(
        !has(hex_of(&a.diff_ids[0])),
        "the shared layer stays: {removed:?}"
    );
    assert!(!t.files().keys().any(|k| k.contains(".tmp-")));
    assert!(t.store.verify("img/b:1").unwrap().is_empty());
    assert!(t.store.lower_dirs(&ib).is_ok());
    assert!(t.store.prune().unwrap().is_empty(), "nothing more to prune");

    // remove by digest removes every name.
    t.store.tag("img/b:1", "more").unwrap();
    t.store
        .remove(&hex_of(&ib.digest)[..16], &Default::default())
        .unwrap();
    assert!(t.store.list().unwrap().is_empty());
    t.store.prune().unwrap();
    assert_eq!(fs::read_dir(t.root().join("layers")).unwrap().count(), 0);
    assert_eq!(
        fs::read_dir(t.root().join("blobs/sha256")).unwrap().count(),
        0
    );
}

#[test]
fn ambiguous_prefixes_and_bad_references() {
    let t = T::new();
    let mut digests = Vec::new();
    // 17 images: two of them share a first hex digit.
    for i in 0..17 {
        let dir = t.path(&format!("i{i}"));
        write_layout(&dir, &[(&small_image(&format!("img{i}")), None)]);
        digests.push(t.import(&dir, None).digest);
    }
    let firsts: Vec<char> = digests
        .iter()
        .map(|d| hex_of(d).chars().next().unwrap())
        .collect();
    let c = firsts
        .iter()
        .find(|c| firsts.iter().filter(|x| x == c).count() > 1)
        .unwrap();
    let e = t.store.resolve(&format!("sha256:{c}")).unwrap_err();
    assert!(matches!(e, Error::Ambiguous { .. }), "{e}");
    for bad in ["UPPER", "a b", "x@sha256:12", "sha256:xyz", "name@md5:00"] {
        assert!(
            matches!(t.store.resolve(bad), Err(Error::Reference { .. })),
            "{bad}"
        );
    }
    assert!(
        matches!(
            t.store.resolve("sha256:ffffffffffffffffffff"),
            Err(Error::NotFound(_))
        ) || digests
            .iter()
            .any(|d| hex_of(d).starts_with("ffffffffffffffffffff"))
    );
}

// ------------------------------------------------------------------ the sh recipe

#[test]
fn make_image_script_output_imports() {
    let t = T::new();
    let out = t.path("probe.tar");
    let st = Command::new("sh")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-fixtures/make-image.sh"))
        .arg(fixtures().join("probe-only"))
        .arg(&out)
        .arg("mica/probe:1")
        .env("CMD", r#"["/mica-probe"]"#)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let img = t.import(&out, None);
    assert_eq!(img.names, vec!["mica/probe:1"]);
    assert_eq!(img.layers.len(), 1);
    let cfg = t.store.config(&img).unwrap();
    assert_eq!(
        cfg.config().as_ref().unwrap().cmd().as_deref(),
        Some(&["/mica-probe".to_string()][..])
    );
    let ld = t.layer(&img.layers[0]);
    assert!(ld.join("mica-probe").is_file());
    assert!(t.store.verify("mica/probe:1").unwrap().is_empty());
    // A bad name is refused by the script.
    let st = Command::new("sh")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-fixtures/make-image.sh"))
        .arg(fixtures().join("probe-only"))
        .arg(t.path("x.tar"))
        .arg("Bad\"Name")
        .output()
        .unwrap();
    assert!(!st.status.success());
}

#[test]
fn default_root_honours_mica_store() {
    // Only reads the variable when set; the default otherwise.
    match std::env::var_os("MICA_STORE") {
        Some(v) if !v.is_empty() => assert_eq!(Store::default_root(), PathBuf::from(v)),
        _ => assert_eq!(Store::default_root(), PathBuf::from("/var/lib/mica")),
    }
}

/// A layer that unpacks to more than the store's filesystem can spare is
/// refused before the disk (or its inodes) run out, and leaves the store as
/// it was: a decompression bomb (32 MiB of zeros, a few KiB gzip'd) and a
/// layer of more files than the filesystem has inodes, each imported into a
/// store on a small tmpfs (mounted in a private mount namespace).
#[test]
fn layers_bigger_than_the_store_can_spare_are_refused() {
    let t = T::new();
    let zeros = {
        let mut l = LayerBuilder::new();
        l.file("zeros", &vec![0u8; 32 << 20]);
        l.build()
    };
    let many = {
        let mut l = LayerBuilder::new();
        for i in 0..600 {
            l.file(&format!("f{i}"), b"");
        }
        l.build()
    };
    const SCRIPT: &str = r#"set -e
mount -t tmpfs -o "$OPTS" mica-test-store "$D"
export MICA_STORE="$D/store"
"$M" image ls >/dev/null
find "$D/store" | sort >"$D/before"
if "$M" image import --name bomb:1 "$L" 2>"$D/err"; then echo IMPORTED; fi
find "$D/store" | sort >"$D/after"
if cmp -s "$D/before" "$D/after"; then echo SAME-STORE; else diff "$D/before" "$D/after" || true; fi
cat "$D/err"
"#;
    for (name, layer, opts, what) in [
        ("zeros", zeros, "size=16m", "more space"),
        ("many", many, "size=16m,nr_inodes=400", "more inodes"),
    ] {
        let img = build_image(&[(layer, Comp::Gzip)], host_arch(), |_| {});
        let layout = t.path(name);
        write_layout(&layout, &[(&img, None)]);
        assert!(
            fs::metadata(layout.join(format!("blobs/sha256/{}", hex_of(&img.layers[0].digest))))
                .unwrap()
                .len()
                < 1 << 20
        );
        let mnt = TempDir::new("small-store");
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", SCRIPT])
            .env("OPTS", opts)
            .env("D", mnt.path())
            .env("M", mica_bin())
            .env("L", &layout)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains("IMPORTED"), "{name}: imported: {text}");
        assert!(
            text.contains("SAME-STORE"),
            "{name}: the store changed: {text}"
        );
        assert!(
            text.contains(what) && text.contains("decompression bomb"),
            "{name}: {text}"
        );
        assert!(host_mounts_containing(&mnt.path().display().to_string()).is_empty());
    }
}
