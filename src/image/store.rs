//! The image store: directories, records, names, locks; import, resolve,
//! tag, remove, prune.
//!
//! Visibility and crash safety: an import stages everything (blobs, layer
//! directories, the mountpoints layer) in `<root>/.tmp-<random>/` and
//! verifies it all before anything is renamed into place; blobs and layers
//! are renamed with RENAME_NOREPLACE, so when two imports race, the first
//! rename wins and the other copy is discarded. The image record is
//! renamed into `images/` last, then `names.json` is rewritten (both under
//! the `.lock` flock). A killed import leaves only its `.tmp-*` directory,
//! which nothing reads and `prune` removes. Imports hold `.gc.lock` shared
//! and `prune` holds it exclusively, so prune never removes what an import
//! is about to reference.

use super::formats::{self, Platform, Source};
use super::reference::{self, normalize_name, Reference};
use super::unpack::{make_mountpoints, unpack_layer};
use super::{digest_hex, io_err, random_hex, rfc3339_now, sha256_digest, sys, verify};
use super::{Compression, Error, HashReader, HashWriter, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const LOCK: &str = ".lock";
const GC_LOCK: &str = ".gc.lock";
const NAMES: &str = "names.json";
const TMP_PREFIX: &str = ".tmp-";

/// An image in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Image {
    /// The manifest digest, `sha256:<hex>`.
    pub digest: String,
    /// `name:tag`s pointing at it.
    pub names: Vec<String>,
    pub config_digest: String,
    /// Layer diff_ids, bottom first.
    pub layers: Vec<String>,
    /// Compressed size of the layers, in bytes.
    pub size: u64,
    /// RFC 3339.
    pub imported_at: String,
    /// `os/arch[/variant]`.
    pub platform: String,
}

/// A layer blob as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LayerBlob {
    pub digest: String,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

/// `images/<hex>.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub names: Vec<String>,
    pub digest: String,
    pub config_digest: String,
    /// diff_ids, bottom first.
    pub layers: Vec<String>,
    /// The compressed layer blobs, bottom first.
    pub blobs: Vec<LayerBlob>,
    pub size: u64,
    pub imported_at: String,
    pub platform: String,
}

impl Record {
    fn image(&self, names: &BTreeMap<String, String>) -> Image {
        Image {
            digest: self.digest.clone(),
            names: names
                .iter()
                .filter(|(_, d)| **d == self.digest)
                .map(|(n, _)| n.clone())
                .collect(),
            config_digest: self.config_digest.clone(),
            layers: self.layers.clone(),
            size: self.size,
            imported_at: self.imported_at.clone(),
            platform: self.platform.clone(),
        }
    }
}

/// A content-addressed image store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// An flock held until dropped.
struct Lock(#[allow(dead_code)] OwnedFd);

/// A staging directory removed (with whatever is left in it) on drop.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A progress line on stderr, when asked for and stderr is a terminal.
struct Progress {
    on: bool,
}

impl Progress {
    fn new(wanted: bool) -> Progress {
        Progress {
            on: wanted && sys::is_tty(2),
        }
    }
    fn show(&self, msg: &str) {
        if self.on {
            eprint!("\r\x1b[K{msg}");
            let _ = io::stderr().flush();
        }
    }
    fn done(&self) {
        if self.on {
            eprint!("\r\x1b[K");
            let _ = io::stderr().flush();
        }
    }
}

/// A blob staged by an import: its digest and where it is now.
struct Staged {
    digest: String,
    size: u64,
    media_type: String,
    path: PathBuf,
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// Write `bytes` to `path` atomically (temp file in the same dir + rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!("{TMP_PREFIX}{}", random_hex()));
    let res = (|| -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map_err(io_err(path))
}

/// Rename `from` to `to` unless `to` exists (then another import won and
/// `from` is left for the staging cleanup).
fn commit(from: &Path, to: &Path) -> Result<()> {
    match sys::rename_noreplace(from, to) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => Ok(()),
        Err(e) => Err(io_err(to)(e)),
    }
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

impl Store {
    /// `$MICA_STORE`, else `/var/lib/mica`.
    pub fn default_root() -> PathBuf {
        match std::env::var_os("MICA_STORE") {
            Some(s) if !s.is_empty() => PathBuf::from(s),
            _ => PathBuf::from("/var/lib/mica"),
        }
    }

    /// Open (creating if needed) the store at `root`. Its directories are
    /// private (0700): layers hold the images' setuid binaries.
    pub fn open(root: &Path) -> Result<Store> {
        let root = if root.is_absolute() {
            root.to_path_buf()
        } else {
            std::env::current_dir().map_err(io_err(root))?.join(root)
        };
        let mut b = fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        for sub in ["blobs/sha256", "layers", "mountpoints", "images"] {
            let d = root.join(sub);
            b.create(&d).map_err(io_err(&d))?;
        }
        for l in [LOCK, GC_LOCK] {
            let p = root.join(l);
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&p)
                .map_err(io_err(&p))?;
        }
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    // -------------------------------------------------------------- paths

    fn hex_of(digest: &str) -> &str {
        digest_hex(digest).unwrap_or("invalid")
    }
    pub(crate) fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(Self::hex_of(digest))
    }
    pub(crate) fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.root.join("layers").join(Self::hex_of(diff_id))
    }
    pub(crate) fn layer_manifest(&self, diff_id: &str) -> PathBuf {
        self.root
            .join("layers")
            .join(format!("{}.manifest", Self::hex_of(diff_id)))
    }
    pub(crate) fn mountpoints_dir(&self, digest: &str) -> PathBuf {
        self.root.join("mountpoints").join(Self::hex_of(digest))
    }
    fn record_path(&self, digest: &str) -> PathBuf {
        self.root
            .join("images")
            .join(format!("{}.json", Self::hex_of(digest)))
    }

    // -------------------------------------------------------------- locks, records, names

    fn lock(&self, name: &str, op: libc::c_int) -> Result<Lock> {
        let p = self.root.join(name);
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&p)
            .map_err(io_err(&p))?;
        let fd = OwnedFd::from(f);
        sys::flock(fd.as_fd(), op).map_err(io_err(&p))?;
        Ok(Lock(fd))
    }

    fn read_names(&self) -> Result<BTreeMap<String, String>> {
        let p = self.root.join(NAMES);
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Store {
                root: self.root.display().to_string(),
                reason: format!("{NAMES}: {e}"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    fn write_names(&self, names: &BTreeMap<String, String>) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(names).expect("names serialize");
        write_atomic(&self.root.join(NAMES), &bytes)
    }

    pub(crate) fn read_record(&self, digest: &str) -> Result<Record> {
        let p = self.record_path(digest);
        let b = fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound(digest.to_string())
            } else {
                io_err(&p)(e)
            }
        })?;
        serde_json::from_slice(&b).map_err(|e| Error::Store {
            root: self.root.display().to_string(),
            reason: format!("{}: {e}", p.display()),
        })
    }

    fn write_record(&self, rec: &Record) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(rec).expect("record serializes");
        write_atomic(&self.record_path(&rec.digest), &bytes)
    }

    /// Digests of every image record (`.tmp-*` and other files ignored).
    fn record_digests(&self) -> Result<Vec<String>> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(hex) = name.strip_suffix(".json") {
                if super::is_hex64(hex) {
                    out.push(format!("sha256:{hex}"));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The digest `r` names.
    fn find(
        &self,
        reference: &str,
        r: &Reference,
        names: &BTreeMap<String, String>,
    ) -> Result<String> {
        let by_prefix = |hex: &str| -> Result<String> {
            let all = self.record_digests()?;
            let m: Vec<&String> = all
                .iter()
                .filter(|d| d["sha256:".len()..].starts_with(hex))
                .collect();
            match m.len() {
                0 => Err(Error::NotFound(reference.to_string())),
                1 => Ok(m[0].clone()),
                _ => Err(Error::Ambiguous {
                    reference: reference.to_string(),
                    matches: m.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", "),
                }),
            }
        };
        match r {
            Reference::Name(n) => names
                .get(n)
                .cloned()
                .ok_or_else(|| Error::NotFound(reference.to_string())),
            Reference::NameOrPrefix(n, hex) => match names.get(n) {
                Some(d) => Ok(d.clone()),
                None => by_prefix(hex),
            },
            Reference::Prefix(hex) => by_prefix(hex),
            Reference::Digest(d) => {
                if exists(&self.record_path(d)) {
                    Ok(d.clone())
                } else {
                    Err(Error::NotFound(reference.to_string()))
                }
            }
        }
    }

    // -------------------------------------------------------------- queries

    pub fn list(&self) -> Result<Vec<Image>> {
        let names = self.read_names()?;
        let mut out = Vec::new();
        for d in self.record_digests()? {
            match self.read_record(&d) {
                Ok(r) => out.push(r.image(&names)),
                Err(Error::NotFound(_)) => {} // removed meanwhile
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| (&a.imported_at, &a.digest).cmp(&(&b.imported_at, &b.digest)));
        Ok(out)
    }

    pub fn resolve(&self, reference: &str) -> Result<Image> {
        let r = reference::parse(reference)?;
        let names = self.read_names()?;
        let d = self.find(reference, &r, &names)?;
        match self.read_record(&d) {
            Err(Error::NotFound(_)) => Err(Error::NotFound(reference.to_string())),
            r => Ok(r?.image(&names)),
        }
    }

    /// The record, the image config and the lower directories, as JSON.
    pub fn inspect(&self, reference: &str) -> Result<serde_json::Value> {
        let img = self.resolve(reference)?;
        let rec = self.read_record(&img.digest)?;
        let cpath = self.blob_path(&img.config_digest);
        let cbytes = fs::read(&cpath).map_err(io_err(&cpath))?;
        let config: serde_json::Value =
            serde_json::from_slice(&cbytes).map_err(|e| Error::Store {
                root: self.root.display().to_string(),
                reason: format!("config {}: {e}", img.config_digest),
            })?;
        let mut v = serde_json::to_value(&rec).expect("record serializes");
        v["names"] = serde_json::json!(img.names);
        v["config"] = config;
        Ok(v)
    }

    pub fn config(&self, image: &Image) -> Result<oci_spec::image::ImageConfiguration> {
        let p = self.blob_path(&image.config_digest);
        let f = fs::File::open(&p).map_err(io_err(&p))?;
        oci_spec::image::ImageConfiguration::from_reader(BufReader::new(f)).map_err(|e| {
            Error::Store {
                root: self.root.display().to_string(),
                reason: format!("config {}: {e}", image.config_digest),
            }
        })
    }

    /// Read-only lower directories for the container's root, top first
    /// (overlayfs `lowerdir` order): the mountpoints layer, then the image's
    /// layers from the top down (a layer listed twice appears once, at its
    /// topmost place).
    pub fn lower_dirs(&self, image: &Image) -> Result<Vec<PathBuf>> {
        let missing = |what: String| Error::Store {
            root: self.root.display().to_string(),
            reason: format!("{what} of image {} is missing (see verify)", image.digest),
        };
        let mp = self.mountpoints_dir(&image.digest);
        if !mp.is_dir() {
            return Err(missing("the mountpoints layer".into()));
        }
        let mut out = vec![mp];
        let mut seen = HashSet::new();
        for d in image.layers.iter().rev() {
            if !seen.insert(d) {
                continue;
            }
            let dir = self.layer_dir(d);
            if !dir.is_dir() {
                return Err(missing(format!("layer {d}")));
            }
            out.push(dir);
        }
        Ok(out)
    }

    // -------------------------------------------------------------- names

    /// Remove the name `reference`; the image record goes when no name is
    /// left. A digest reference removes the image and all its names.
    /// Layers and blobs stay until `prune`. `users` maps image digests to
    /// the containers launched from them: an image with users keeps its
    /// record (removing its last name is refused), so `prune` keeps its
    /// layers.
    pub fn remove(&self, reference: &str, users: &BTreeMap<String, Vec<String>>) -> Result<()> {
        let r = reference::parse(reference)?;
        let _l = self.lock(LOCK, libc::LOCK_EX)?;
        let mut names = self.read_names()?;
        let by_name = match &r {
            Reference::Name(n) | Reference::NameOrPrefix(n, _) if names.contains_key(n) => {
                Some(n.clone())
            }
            _ => None,
        };
        let digest = match &by_name {
            Some(n) => names.remove(n).expect("name present"),
            None => {
                let d = self.find(reference, &r, &names)?;
                names.retain(|_, v| *v != d);
                d
            }
        };
        let left: Vec<String> = names
            .iter()
            .filter(|(_, v)| **v == digest)
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(ids) = users
            .get(&digest)
            .filter(|ids| left.is_empty() && !ids.is_empty())
        {
            return Err(Error::InUse {
                reference: reference.to_string(),
                containers: ids.join(", "),
            });
        }
        if left.is_empty() {
            let p = self.record_path(&digest);
            match fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&p)(e)),
                _ => {}
            }
        } else if let Ok(mut rec) = self.read_record(&digest) {
            rec.names = left;
            self.write_record(&rec)?;
        }
        self.write_names(&names)
    }

    /// Give the image `reference` names the additional name `new_name`
    /// (moved from another image if it had it).
    pub fn tag(&self, reference: &str, new_name: &str) -> Result<()> {
        let r = reference::parse(reference)?;
        let n = normalize_name(new_name).map_err(|reason| Error::Reference {
            reference: new_name.to_string(),
            reason,
        })?;
        let _l = self.lock(LOCK, libc::LOCK_EX)?;
        let mut names = self.read_names()?;
        let digest = self.find(reference, &r, &names)?;
        let rec = self.read_record(&digest)?;
        self.assign_names(&mut names, rec, &[n])?;
        self.write_names(&names)
    }

    /// Point `new` at `rec` (taking them from other images), rewrite the
    /// affected records. The caller holds `.lock` and writes `names`.
    fn assign_names(
        &self,
        names: &mut BTreeMap<String, String>,
        mut rec: Record,
        new: &[String],
    ) -> Result<()> {
        for n in new {
            if let Some(old) = names.insert(n.clone(), rec.digest.clone()) {
                if old != rec.digest {
                    if let Ok(mut o) = self.read_record(&old) {
                        o.names.retain(|x| x != n);
                        self.write_record(&o)?;
                    }
                }
            }
        }
        let mut all: BTreeSet<String> = names
            .iter()
            .filter(|(_, d)| **d == rec.digest)
            .map(|(n, _)| n.clone())
            .collect();
        all.extend(new.iter().cloned());
        rec.names = all.into_iter().collect();
        self.write_record(&rec)
    }

    // -------------------------------------------------------------- import

    /// Import the image at `path` (OCI layout dir, oci-archive, docker
    /// archive). `name` names it (and picks it when the input holds
    /// several); `platform` overrides the host's (`linux/arm64[/v8]`).
    pub fn import(
        &self,
        path: &Path,
        name: Option<&str>,
        platform: Option<&str>,
        progress: bool,
    ) -> Result<Image> {
        let want = match platform {
            Some(p) => Platform::parse(p)?,
            None => Platform::host(),
        };
        let name = name
            .map(|n| {
                normalize_name(n).map_err(|reason| Error::Reference {
                    reference: n.to_string(),
                    reason,
                })
            })
            .transpose()?;
        let _gc = self.lock(GC_LOCK, libc::LOCK_SH)?;
        let staging = Staging(self.root.join(format!("{TMP_PREFIX}{}", random_hex())));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging.0)
            .map_err(io_err(&staging.0))?;
        let prog = Progress::new(progress);
        let res = self.import_staged(&staging.0, path, name, &want, &prog);
        prog.done();
        res
    }

    fn import_staged(
        &self,
        staging: &Path,
        path: &Path,
        name: Option<String>,
        want: &Platform,
        prog: &Progress,
    ) -> Result<Image> {
        let src = Source::open(path, staging)?;
        let sel = formats::select(&src, name.as_deref(), want)?;
        let n = sel.layers.len();

        // 1. Layer blobs, hashed while copied.
        let mut blobs: Vec<Staged> = Vec::new();
        for (i, l) in sel.layers.iter().enumerate() {
            prog.show(&format!("{}: copying layer {}/{n}", src.display, i + 1));
            let (mut r, _) = src.reader(&l.member)?;
            let tmp = staging.join(format!("blob-{i}"));
            let (digest, size) = copy_hashed(&mut r, &tmp, &src.display, &l.member)?;
            if let Some((want_digest, want_size)) = &l.expected {
                if digest != *want_digest {
                    return Err(Error::Digest {
                        kind: "layer",
                        name: want_digest.clone(),
                        actual: digest,
                        expected: want_digest.clone(),
                        by: "the manifest",
                    });
                }
                if size != *want_size {
                    return Err(Error::Size {
                        kind: "layer",
                        name: want_digest.clone(),
                        actual: size,
                        expected: *want_size,
                    });
                }
            }
            let media_type = if l.media_type.is_empty() {
                Compression::of_file(&tmp)
                    .map_err(io_err(&tmp))?
                    .oci_layer_media_type()
                    .to_string()
            } else {
                l.media_type.clone()
            };
            blobs.push(Staged {
                digest,
                size,
                media_type,
                path: tmp,
            });
        }

        // 2. Config and manifest (written for a docker archive).
        let (manifest, manifest_digest) = match &sel.manifest {
            Some((b, d)) => (b.clone(), d.clone()),
            None => {
                let layers: Vec<(String, u64, String)> = blobs
                    .iter()
                    .map(|b| (b.digest.clone(), b.size, b.media_type.clone()))
                    .collect();
                let b = formats::synthesize_manifest(
                    &sel.config_digest,
                    sel.config.len() as u64,
                    &layers,
                );
                let d = sha256_digest(&b);
                (b, d)
            }
        };
        let config_tmp = staging.join("config");
        fs::write(&config_tmp, &sel.config).map_err(io_err(&config_tmp))?;
        let manifest_tmp = staging.join("manifest");
        fs::write(&manifest_tmp, &manifest).map_err(io_err(&manifest_tmp))?;

        // 3. Layers: each unpacked once, its uncompressed digest checked
        //    against the config's diff_id either way.
        let mut unpacked: Vec<(String, PathBuf, PathBuf)> = Vec::new(); // diff_id, dir, manifest
        for (i, (b, diff_id)) in blobs.iter().zip(&sel.diff_ids).enumerate() {
            prog.show(&format!(
                "{}: unpacking layer {}/{n} ({})",
                src.display,
                i + 1,
                short(diff_id)
            ));
            let comp = Compression::of_file(&b.path).map_err(io_err(&b.path))?;
            let f = fs::File::open(&b.path).map_err(io_err(&b.path))?;
            let dec = comp
                .decoder(BufReader::with_capacity(1 << 16, f))
                .map_err(|e| Error::Invalid(format!("layer {}: {e}", b.digest)))?;
            let mut hr = HashReader::new(dec);
            let have =
                exists(&self.layer_dir(diff_id)) || unpacked.iter().any(|(d, _, _)| d == diff_id);
            let hex = digest_hex(diff_id).map_err(Error::Invalid)?;
            let dir = staging.join(format!("layer-{hex}"));
            if !have {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&dir)
                    .map_err(io_err(&dir))?;
                unpack_layer(&mut hr, &dir, &b.digest)?;
            }
            let (actual, _) = hr
                .finish()
                .map_err(|e| Error::Invalid(format!("layer {}: decompressing: {e}", b.digest)))?;
            if actual != *diff_id {
                return Err(Error::DiffId {
                    blob: b.digest.clone(),
                    actual,
                    expected: diff_id.clone(),
                });
            }
            if !have {
                let man = staging.join(format!("layer-{hex}.manifest"));
                verify::write_manifest(&dir, &man).map_err(io_err(&man))?;
                unpacked.push((diff_id.clone(), dir, man));
            }
        }

        // 4. The mountpoints the merged image lacks.
        let mp_final = self.mountpoints_dir(&manifest_digest);
        let mp_tmp = staging.join("mountpoints");
        let make_mp = !exists(&mp_final);
        if make_mp {
            let mut seen = HashSet::new();
            let lower: Vec<PathBuf> = sel
                .diff_ids
                .iter()
                .rev()
                .filter(|d| seen.insert(*d))
                .map(|d| match unpacked.iter().find(|(x, _, _)| x == d) {
                    Some((_, dir, _)) => dir.clone(),
                    None => self.layer_dir(d),
                })
                .collect();
            fs::create_dir(&mp_tmp).map_err(io_err(&mp_tmp))?;
            make_mountpoints(&lower, &mp_tmp).map_err(io_err(&mp_tmp))?;
        }

        // 5. Everything checked: flush, then rename into place.
        prog.show(&format!("{}: committing", src.display));
        if let Ok(fd) = sys::open_dir(staging) {
            unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&fd)) };
        }
        for b in &blobs {
            commit(&b.path, &self.blob_path(&b.digest))?;
        }
        commit(&config_tmp, &self.blob_path(&sel.config_digest))?;
        commit(&manifest_tmp, &self.blob_path(&manifest_digest))?;
        for (diff_id, dir, man) in &unpacked {
            let final_man = self.layer_manifest(diff_id);
            fs::rename(man, &final_man).map_err(io_err(&final_man))?;
            commit(dir, &self.layer_dir(diff_id))?;
        }
        if make_mp {
            commit(&mp_tmp, &mp_final)?;
        }

        // 6. The record, then the names: the image becomes visible.
        let _l = self.lock(LOCK, libc::LOCK_EX)?;
        let mut names = self.read_names()?;
        let rec = Record {
            names: Vec::new(),
            digest: manifest_digest.clone(),
            config_digest: sel.config_digest.clone(),
            layers: sel.diff_ids.clone(),
            blobs: blobs
                .iter()
                .map(|b| LayerBlob {
                    digest: b.digest.clone(),
                    size: b.size,
                    media_type: b.media_type.clone(),
                })
                .collect(),
            size: blobs.iter().map(|b| b.size).sum(),
            imported_at: rfc3339_now(),
            platform: sel.platform.to_string(),
        };
        let new_names = match name {
            Some(n) => vec![n],
            None => sel.names.clone(),
        };
        self.assign_names(&mut names, rec.clone(), &new_names)?;
        self.write_names(&names)?;
        Ok(rec.image(&names))
    }

    // -------------------------------------------------------------- verify, prune

    /// Re-hash the image's blobs, re-walk its layers; every problem found
    /// (empty: all is well).
    pub fn verify(&self, reference: &str) -> Result<Vec<String>> {
        let _gc = self.lock(GC_LOCK, libc::LOCK_SH)?;
        let img = self.resolve(reference)?;
        let rec = self.read_record(&img.digest)?;
        Ok(verify::verify_record(self, &rec))
    }

    /// Remove blobs, layers and mountpoint dirs no image uses, and `.tmp-*`
    /// leftovers of killed imports. Returns what was removed.
    pub fn prune(&self) -> Result<Vec<String>> {
        let _gc = self.lock(GC_LOCK, libc::LOCK_EX)?;
        let _l = self.lock(LOCK, libc::LOCK_EX)?;
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        let mut images = HashSet::new();
        for d in self.record_digests()? {
            let rec = self.read_record(&d)?;
            images.insert(Self::hex_of(&rec.digest).to_string());
            blobs.insert(Self::hex_of(&rec.digest).to_string());
            blobs.insert(Self::hex_of(&rec.config_digest).to_string());
            for b in &rec.blobs {
                blobs.insert(Self::hex_of(&b.digest).to_string());
            }
            for l in &rec.layers {
                layers.insert(Self::hex_of(l).to_string());
            }
        }
        let mut removed = Vec::new();
        let mut rm = |p: &Path, what: String| -> Result<()> {
            let m = match fs::symlink_metadata(p) {
                Ok(m) => m,
                Err(_) => return Ok(()),
            };
            if m.is_dir() {
                fs::remove_dir_all(p).map_err(io_err(p))?;
            } else {
                fs::remove_file(p).map_err(io_err(p))?;
            }
            removed.push(what);
            Ok(())
        };
        let list = |dir: &Path| -> Result<Vec<String>> {
            let mut v = Vec::new();
            for e in fs::read_dir(dir).map_err(io_err(dir))? {
                let e = e.map_err(io_err(dir))?;
                v.push(e.file_name().to_string_lossy().into_owned());
            }
            v.sort();
            Ok(v)
        };
        for name in list(&self.root)? {
            if name.starts_with(TMP_PREFIX) {
                rm(&self.root.join(&name), format!("temporary {name}"))?;
            }
        }
        for (sub, kind) in [
            ("images", "images"),
            ("blobs/sha256", "blob"),
            ("layers", "layer"),
            ("mountpoints", "mountpoints"),
        ] {
            let dir = self.root.join(sub);
            for name in list(&dir)? {
                let p = dir.join(&name);
                if name.starts_with(TMP_PREFIX) {
                    rm(&p, format!("temporary {sub}/{name}"))?;
                    continue;
                }
                match kind {
                    "blob" if !blobs.contains(&name) => rm(&p, format!("blob sha256:{name}"))?,
                    "layer" => {
                        let hex = name.strip_suffix(".manifest").unwrap_or(&name);
                        if !layers.contains(hex) {
                            let what = if hex.len() == name.len() {
                                format!("layer sha256:{hex}")
                            } else {
                                format!("layer manifest sha256:{hex}")
                            };
                            rm(&p, what)?;
                        }
                    }
                    "mountpoints" if !images.contains(&name) => {
                        rm(&p, format!("mountpoints sha256:{name}"))?
                    }
                    _ => {}
                }
            }
        }
        Ok(removed)
    }
}

/// Copy `r` to a new file `dest`, hashing; read errors name the source.
fn copy_hashed(r: &mut dyn Read, dest: &Path, src: &str, member: &str) -> Result<(String, u64)> {
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(dest)
        .map_err(io_err(dest))?;
    let mut w = HashWriter::new(io::BufWriter::with_capacity(1 << 16, f));
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(format!("{src}: {member}"))(e)),
        };
        w.write_all(&buf[..k]).map_err(io_err(dest))?;
    }
    let (bw, digest, size) = w.finish();
    bw.into_inner().map_err(|e| io_err(dest)(e.into_error()))?;
    Ok((digest, size))
}
