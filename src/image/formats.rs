//! Input formats -> the one image to import: its manifest, config and layer
//! blobs.
//!
//! - OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/`)
//! - `oci-archive`: the same inside a tar (optionally gzip/zstd-compressed)
//! - `docker save`: `manifest.json` + `<id>/layer.tar` (or, from docker 25,
//!   an OCI layout beside `manifest.json`, which is then preferred)
//!
//! Manifests and indexes may use OCI or Docker (schema 2) media types. A
//! multi-platform index resolves to the wanted platform. Every small blob
//! read here (indexes, manifests, configs) is checked against its digest;
//! layer blobs are only located here and checked while the store copies
//! them.

use super::reference::{normalize_name, tag_of};
use super::{digest_hex, io_err, is_hex64, sha256_digest, sys, Compression, Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Largest JSON document (index, manifest, config) read into memory.
const MAX_JSON: u64 = 32 << 20;
/// How deep indexes may nest.
const MAX_INDEX_DEPTH: usize = 4;

// ------------------------------------------------------------------ platform

/// `os/arch[/variant]`, as OCI spells them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

fn normalize_arch(arch: &str) -> String {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" | "x86" => "386",
        "powerpc64le" | "ppc64el" => "ppc64le",
        a => a,
    }
    .to_string()
}

/// The variant an image without one is taken to have.
fn default_variant(arch: &str) -> Option<&'static str> {
    match arch {
        "arm64" => Some("v8"),
        "amd64" => Some("v1"),
        _ => None,
    }
}

impl Platform {
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            a => a,
        };
        Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: None,
        }
    }

    /// `linux/arm64`, `linux/arm/v7`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let bad = || {
            Error::Invalid(format!(
                "invalid platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64"
            ))
        };
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            arch: normalize_arch(&parts[1].to_ascii_lowercase()),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }

    fn from_json(p: &PlatformJson) -> Platform {
        Platform {
            os: p.os.to_ascii_lowercase(),
            arch: normalize_arch(&p.architecture.to_ascii_lowercase()),
            variant: p
                .variant
                .as_ref()
                .filter(|v| !v.is_empty())
                .map(|v| v.to_ascii_lowercase()),
        }
    }

    /// Whether an image for `self` satisfies a request for `want`.
    pub fn satisfies(&self, want: &Platform) -> bool {
        if self.os != want.os || self.arch != want.arch {
            return false;
        }
        match (&want.variant, &self.variant) {
            (None, _) => true,
            (Some(w), Some(v)) => w == v,
            (Some(w), None) => default_variant(&self.arch) == Some(w.as_str()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ JSON

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct PlatformJson {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct Descriptor {
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformJson>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct IndexJson {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct ManifestJson {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct RootFsJson {
    #[serde(rename = "type", default)]
    typ: String,
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ConfigJson {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
    rootfs: RootFsJson,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

// ------------------------------------------------------------------ source

/// A member of a tar archive, by its cleaned name.
#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Hard(String),
    Sym(String),
    Unsupported(&'static str),
}

enum Kind {
    Dir(OwnedFd),
    Tar {
        path: PathBuf,
        members: HashMap<String, Member>,
    },
}

/// The input: a directory or a tar file, read by member name.
pub(crate) struct Source {
    pub display: String,
    kind: Kind,
}

/// `./a//b/` -> `a/b`; `..` pops (None when it would leave the top).
fn clean(name: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

impl Source {
    /// Open `path`; a compressed archive is decompressed into `scratch`.
    pub fn open(path: &Path, scratch: &Path) -> Result<Source> {
        let display = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(io_err(path))?;
        if meta.is_dir() {
            // The caller's directory (a symlink to it is fine); what is read
            // beneath it is resolved in-root.
            let fd = OwnedFd::from(File::open(path).map_err(io_err(path))?);
            return Ok(Source {
                display,
                kind: Kind::Dir(fd),
            });
        }
        let mut tar_path = path.to_path_buf();
        let comp = Compression::of_file(path).map_err(io_err(path))?;
        if comp != Compression::None {
            let out = scratch.join("archive.tar");
            let f = File::open(path).map_err(io_err(path))?;
            let mut dec = comp.decoder(io::BufReader::new(f)).map_err(io_err(path))?;
            let mut w = File::create(&out).map_err(io_err(&out))?;
            io::copy(&mut dec, &mut w).map_err(io_err(path))?;
            tar_path = out;
        }
        let members = index_tar(&tar_path)
            .map_err(|e| Error::Invalid(format!("{display}: not a readable tar archive: {e}")))?;
        Ok(Source {
            display,
            kind: Kind::Tar {
                path: tar_path,
                members,
            },
        })
    }

    fn member(&self, name: &str) -> Result<(u64, u64)> {
        let Kind::Tar { members, .. } = &self.kind else {
            unreachable!("member() on a directory source")
        };
        let missing = || Error::Invalid(format!("{}: {name} is missing", self.display));
        let mut cur = clean(name).ok_or_else(missing)?;
        for _ in 0..16 {
            match members.get(&cur) {
                None => return Err(missing()),
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Hard(t)) => cur = t.clone(),
                Some(Member::Sym(t)) => {
                    let joined = if t.starts_with('/') {
                        t.clone()
                    } else {
                        match cur.rsplit_once('/') {
                            Some((dir, _)) => format!("{dir}/{t}"),
                            None => t.clone(),
                        }
                    };
                    cur = clean(&joined).ok_or_else(missing)?;
                }
                Some(Member::Unsupported(what)) => {
                    return Err(Error::Invalid(format!(
                        "{}: {name} is a {what}",
                        self.display
                    )))
                }
            }
        }
        Err(Error::Invalid(format!(
            "{}: {name}: too many links",
            self.display
        )))
    }

    pub fn exists(&self, name: &str) -> bool {
        match &self.kind {
            Kind::Dir(fd) => clean(name).is_some_and(|n| {
                !n.is_empty() && sys::open_in_root(fd.as_fd(), n.as_bytes(), libc::O_PATH).is_ok()
            }),
            Kind::Tar { .. } => self.member(name).is_ok(),
        }
    }

    /// A reader of member `name` and its size.
    pub fn reader(&self, name: &str) -> Result<(Box<dyn Read>, u64)> {
        let missing = || Error::Invalid(format!("{}: {name} is missing", self.display));
        match &self.kind {
            Kind::Dir(fd) => {
                let n = clean(name).filter(|n| !n.is_empty()).ok_or_else(missing)?;
                // O_NONBLOCK: a FIFO planted in the layout must not block the
                // open before the regular-file check below.
                let flags = libc::O_RDONLY | libc::O_NONBLOCK;
                let f = match sys::open_in_root(fd.as_fd(), n.as_bytes(), flags) {
                    Ok(f) => File::from(f),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
                    Err(e) => return Err(io_err(format!("{}/{n}", self.display))(e)),
                };
                let meta = f
                    .metadata()
                    .map_err(io_err(format!("{}/{n}", self.display)))?;
                if !meta.is_file() {
                    return Err(Error::Invalid(format!(
                        "{}: {n} is not a regular file",
                        self.display
                    )));
                }
                Ok((Box::new(f), meta.len()))
            }
            Kind::Tar { path, .. } => {
                let (offset, size) = self.member(name)?;
                let mut f = File::open(path).map_err(io_err(path))?;
                f.seek(SeekFrom::Start(offset)).map_err(io_err(path))?;
                Ok((Box::new(f.take(size)), size))
            }
        }
    }

    /// A small member (JSON) read whole.
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let (r, size) = self.reader(name)?;
        if size > MAX_JSON {
            return Err(Error::Invalid(format!(
                "{}: {name} is {size} bytes, too large for a JSON document",
                self.display
            )));
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.take(MAX_JSON + 1)
            .read_to_end(&mut buf)
            .map_err(io_err(format!("{}: {name}", self.display)))?;
        Ok(buf)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::Invalid(format!("{}: {what}: invalid JSON: {e}", self.display)))
    }

    /// Read blob `desc` and check its digest and size.
    fn read_blob(
        &self,
        desc: &Descriptor,
        kind: &'static str,
        by: &'static str,
    ) -> Result<Vec<u8>> {
        let hex = digest_hex(&desc.digest)
            .map_err(|e| Error::Invalid(format!("{}: {kind}: {e}", self.display)))?;
        let bytes = self.read_small(&format!("blobs/sha256/{hex}"))?;
        let actual = sha256_digest(&bytes);
        if actual != desc.digest {
            return Err(Error::Digest {
                kind,
                name: desc.digest.clone(),
                actual,
                expected: desc.digest.clone(),
                by,
            });
        }
        if bytes.len() as u64 != desc.size {
            return Err(Error::Size {
                kind,
                name: desc.digest.clone(),
                actual: bytes.len() as u64,
                expected: desc.size,
            });
        }
        Ok(bytes)
    }
}

/// Name -> member for every entry of the tar at `path`.
fn index_tar(path: &Path) -> io::Result<HashMap<String, Member>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut ar = tar::Archive::new(file);
    let mut members = HashMap::new();
    for entry in ar.entries_with_seek()? {
        let entry = entry?;
        let Some(name) = std::str::from_utf8(&entry.path_bytes())
            .ok()
            .and_then(clean)
        else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let link = || {
            entry
                .link_name_bytes()
                .and_then(|l| String::from_utf8(l.into_owned()).ok())
        };
        let m = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let (offset, size) = (entry.raw_file_position(), entry.size());
                if offset.saturating_add(size) > len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "truncated: {name:?} needs {} bytes, the archive has {len}",
                            offset.saturating_add(size)
                        ),
                    ));
                }
                Member::File { offset, size }
            }
            tar::EntryType::Link => match link().and_then(|l| clean(&l)) {
                Some(t) => Member::Hard(t),
                None => Member::Unsupported("hard link with a bad target"),
            },
            tar::EntryType::Symlink => match link() {
                Some(t) => Member::Sym(t),
                None => Member::Unsupported("symlink with a bad target"),
            },
            tar::EntryType::GNUSparse => Member::Unsupported("sparse file"),
            _ => continue,
        };
        members.insert(name, m);
    }
    Ok(members)
}

// ------------------------------------------------------------------ selection

/// A layer blob to copy: where it is in the source and what it must be.
#[derive(Debug, Clone)]
pub(crate) struct LayerSrc {
    pub member: String,
    /// (digest, size) from the manifest; None for docker-archive layers,
    /// which are checked by their diff_id only.
    pub expected: Option<(String, u64)>,
    pub media_type: String,
}

/// The image chosen from the input.
#[derive(Debug)]
pub(crate) struct Selected {
    /// The manifest's bytes and digest; None for a docker archive, whose
    /// manifest is written by the store once the layer digests are known.
    pub manifest: Option<(Vec<u8>, String)>,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub diff_ids: Vec<String>,
    pub layers: Vec<LayerSrc>,
    /// Normalized names the input gives the image.
    pub names: Vec<String>,
    pub platform: Platform,
}

#[derive(Clone, Debug)]
struct Cand {
    desc: Descriptor,
    names: Vec<String>,
    tags: Vec<String>,
    group: usize,
}

fn names_from_annotations(a: &BTreeMap<String, String>) -> (Vec<String>, Vec<String>) {
    let mut names = Vec::new();
    let mut tags = Vec::new();
    if let Some(n) = a
        .get("io.containerd.image.name")
        .and_then(|n| normalize_name(n).ok())
    {
        names.push(n);
    }
    if let Some(r) = a.get("org.opencontainers.image.ref.name") {
        if r.contains(':') || r.contains('/') {
            if let Ok(n) = normalize_name(r) {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        } else {
            tags.push(r.clone());
        }
    }
    (names, tags)
}

enum DocKind {
    Index,
    Manifest,
    Other,
}

fn kind_of(media_type: &str) -> DocKind {
    match media_type {
        OCI_INDEX | DOCKER_LIST => DocKind::Index,
        OCI_MANIFEST | DOCKER_MANIFEST | "" => DocKind::Manifest,
        _ => DocKind::Other,
    }
}

fn layer_media_type_ok(mt: &str) -> bool {
    mt.is_empty() || (mt.contains("tar") && !mt.contains("encrypted"))
}

/// Choose the image in `src`: the one named `name` when the input holds
/// several, for `want`.
pub(crate) fn select(src: &Source, name: Option<&str>, want: &Platform) -> Result<Selected> {
    if src.exists("index.json") {
        select_oci(src, name, want)
    } else if src.exists("manifest.json") {
        select_docker(src, name, want)
    } else {
        Err(Error::Invalid(format!(
            "{}: not an OCI image layout (no index.json) nor a docker archive (no manifest.json)",
            src.display
        )))
    }
}

fn parse_manifest(src: &Source, bytes: &[u8], digest: &str) -> Result<ManifestJson> {
    let v: serde_json::Value = src.json(&format!("manifest {digest}"), bytes)?;
    if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) {
        return Err(Error::Invalid(format!(
            "{}: manifest {digest} is a Docker schema 1 manifest, which mica does not support",
            src.display
        )));
    }
    let m: ManifestJson = serde_json::from_value(v)
        .map_err(|e| Error::Invalid(format!("{}: manifest {digest}: {e}", src.display)))?;
    Ok(m)
}

fn parse_config(src: &Source, bytes: &[u8], digest: &str) -> Result<ConfigJson> {
    let c: ConfigJson = src.json(&format!("config {digest}"), bytes)?;
    if c.rootfs.typ != "layers" {
        return Err(Error::Invalid(format!(
            "{}: config {digest}: rootfs.type is {:?}, not \"layers\"",
            src.display, c.rootfs.typ
        )));
    }
    oci_spec::image::ImageConfiguration::from_reader(bytes).map_err(|e| {
        Error::Invalid(format!(
            "{}: config {digest} is not a valid image configuration: {e}",
            src.display
        ))
    })?;
    for d in &c.rootfs.diff_ids {
        digest_hex(d).map_err(|e| {
            Error::Invalid(format!("{}: config {digest}: diff_id: {e}", src.display))
        })?;
    }
    Ok(c)
}

fn config_platform(c: &ConfigJson) -> Platform {
    Platform::from_json(&PlatformJson {
        architecture: c.architecture.clone(),
        os: c.os.clone(),
        variant: c.variant.clone(),
    })
}

fn select_oci(src: &Source, name: Option<&str>, want: &Platform) -> Result<Selected> {
    let top = src.read_small("index.json")?;
    let index: IndexJson = src.json("index.json", &top)?;
    let mut cands: Vec<Cand> = index
        .manifests
        .into_iter()
        .enumerate()
        .map(|(i, desc)| {
            let (names, tags) = names_from_annotations(&desc.annotations);
            Cand {
                desc,
                names,
                tags,
                group: i,
            }
        })
        .collect();
    if let Some(n) = name {
        let tag = tag_of(n);
        let picked: Vec<Cand> = cands
            .iter()
            .filter(|c| c.names.iter().any(|x| x == n) || c.tags.iter().any(|t| t == tag))
            .cloned()
            .collect();
        if !picked.is_empty() {
            cands = picked;
        }
    }

    // Expand indexes into their manifests.
    let mut manifests = Vec::new();
    let mut todo: Vec<(Cand, usize)> = cands.into_iter().rev().map(|c| (c, 0)).collect();
    while let Some((c, depth)) = todo.pop() {
        match kind_of(&c.desc.media_type) {
            DocKind::Manifest if !c.desc.media_type.is_empty() => manifests.push(c),
            DocKind::Other => {} // artifacts, signatures, ...: not images
            _ => {
                let by = if depth == 0 {
                    "index.json"
                } else {
                    "the index"
                };
                let kind = if matches!(kind_of(&c.desc.media_type), DocKind::Index) {
                    "index"
                } else {
                    "manifest"
                };
                let bytes = src.read_blob(&c.desc, kind, by)?;
                let v: serde_json::Value = src.json(&c.desc.digest, &bytes)?;
                if v.get("manifests").is_none() {
                    // A manifest without a media type.
                    manifests.push(c);
                    continue;
                }
                if depth >= MAX_INDEX_DEPTH {
                    return Err(Error::Invalid(format!(
                        "{}: indexes nested too deeply",
                        src.display
                    )));
                }
                let idx: IndexJson = serde_json::from_value(v).map_err(|e| {
                    Error::Invalid(format!("{}: index {}: {e}", src.display, c.desc.digest))
                })?;
                for child in idx.manifests.into_iter().rev() {
                    let (mut names, tags) = names_from_annotations(&child.annotations);
                    for n in &c.names {
                        if !names.contains(n) {
                            names.push(n.clone());
                        }
                    }
                    todo.push((
                        Cand {
                            desc: child,
                            names,
                            tags,
                            group: c.group,
                        },
                        depth + 1,
                    ));
                }
            }
        }
    }
    if manifests.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: holds no image manifest",
            src.display
        )));
    }

    let chosen = if manifests.len() == 1 {
        manifests.pop().unwrap()
    } else {
        let mut offered = Vec::new();
        let mut matching = Vec::new();
        for c in manifests {
            let p = match &c.desc.platform {
                Some(p) => Platform::from_json(p),
                None => {
                    let mbytes = src.read_blob(&c.desc, "manifest", "the index")?;
                    let m = parse_manifest(src, &mbytes, &c.desc.digest)?;
                    let cbytes = src.read_blob(&m.config, "config", "the manifest")?;
                    config_platform(&parse_config(src, &cbytes, &m.config.digest)?)
                }
            };
            if p.satisfies(want) {
                matching.push(c);
            } else if p.os != "unknown" {
                let s = p.to_string();
                if !offered.contains(&s) {
                    offered.push(s);
                }
            }
        }
        if matching.is_empty() {
            return Err(Error::Platform {
                source_path: src.display.clone(),
                wanted: want.to_string(),
                offered: if offered.is_empty() {
                    "nothing".into()
                } else {
                    offered.join(", ")
                },
            });
        }
        let mut first = matching[0].clone();
        if matching
            .iter()
            .any(|c| c.group != first.group && c.desc.digest != first.desc.digest)
        {
            let list: Vec<String> = matching
                .iter()
                .map(|c| {
                    c.names
                        .first()
                        .cloned()
                        .unwrap_or_else(|| c.desc.digest.clone())
                })
                .collect();
            return Err(Error::Invalid(format!(
                "{}: holds several images for {want} ({}); pass a name to choose one",
                src.display,
                list.join(", ")
            )));
        }
        // The same manifest listed under several names: it gets them all.
        for c in &matching[1..] {
            if c.desc.digest == first.desc.digest {
                for n in &c.names {
                    if !first.names.contains(n) {
                        first.names.push(n.clone());
                    }
                }
            }
        }
        first
    };

    let mbytes = src.read_blob(&chosen.desc, "manifest", "the index")?;
    let m = parse_manifest(src, &mbytes, &chosen.desc.digest)?;
    let cbytes = src.read_blob(&m.config, "config", "the manifest")?;
    let config = parse_config(src, &cbytes, &m.config.digest)?;
    let mut layers = Vec::new();
    for l in &m.layers {
        if !layer_media_type_ok(&l.media_type) {
            return Err(Error::Invalid(format!(
                "{}: layer {} has media type {}, which mica cannot unpack",
                src.display, l.digest, l.media_type
            )));
        }
        let hex = digest_hex(&l.digest)
            .map_err(|e| Error::Invalid(format!("{}: layer: {e}", src.display)))?;
        layers.push(LayerSrc {
            member: format!("blobs/sha256/{hex}"),
            expected: Some((l.digest.clone(), l.size)),
            media_type: l.media_type.clone(),
        });
    }
    finish(
        src,
        Some((mbytes, chosen.desc.digest.clone())),
        cbytes,
        m.config.digest.clone(),
        config,
        layers,
        chosen.names,
        want,
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    src: &Source,
    manifest: Option<(Vec<u8>, String)>,
    config_bytes: Vec<u8>,
    config_digest: String,
    config: ConfigJson,
    layers: Vec<LayerSrc>,
    names: Vec<String>,
    want: &Platform,
) -> Result<Selected> {
    let platform = config_platform(&config);
    if !platform.satisfies(want) {
        return Err(Error::Invalid(format!(
            "{}: the image is for {platform}, not {want} (pass the platform {platform} to import it anyway)",
            src.display
        )));
    }
    if config.rootfs.diff_ids.len() != layers.len() {
        return Err(Error::Invalid(format!(
            "{}: the manifest lists {} layers but config {config_digest} has {} diff_ids",
            src.display,
            layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    Ok(Selected {
        manifest,
        config: config_bytes,
        config_digest,
        diff_ids: config.rootfs.diff_ids,
        layers,
        names,
        platform,
    })
}

/// The sha256 hex a docker-archive member's name claims (`<hex>.json`,
/// `blobs/sha256/<hex>`).
fn hex_in_name(member: &str) -> Option<&str> {
    let base = member.rsplit('/').next()?;
    let hex = base.strip_suffix(".json").unwrap_or(base);
    is_hex64(hex).then_some(hex)
}

fn select_docker(src: &Source, name: Option<&str>, want: &Platform) -> Result<Selected> {
    let bytes = src.read_small("manifest.json")?;
    let entries: Vec<DockerEntry> = src.json("manifest.json", &bytes)?;
    if entries.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: manifest.json lists no image",
            src.display
        )));
    }
    let names_of = |e: &DockerEntry| -> Vec<String> {
        e.repo_tags
            .iter()
            .flatten()
            .filter_map(|t| normalize_name(t).ok())
            .collect()
    };
    let mut cands: Vec<&DockerEntry> = entries.iter().collect();
    if let Some(n) = name {
        let picked: Vec<&DockerEntry> = cands
            .iter()
            .copied()
            .filter(|e| names_of(e).iter().any(|x| x == n))
            .collect();
        if !picked.is_empty() {
            cands = picked;
        }
    }
    let load = |e: &DockerEntry| -> Result<(Vec<u8>, String, ConfigJson)> {
        let member = clean(&e.config).filter(|m| !m.is_empty()).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: manifest.json: bad config path {:?}",
                src.display, e.config
            ))
        })?;
        let cbytes = src.read_small(&member)?;
        let digest = sha256_digest(&cbytes);
        if let Some(hex) = hex_in_name(&member) {
            if digest != format!("sha256:{hex}") {
                return Err(Error::Digest {
                    kind: "config",
                    name: member.clone(),
                    actual: digest,
                    expected: format!("sha256:{hex}"),
                    by: "its file name",
                });
            }
        }
        let c = parse_config(src, &cbytes, &digest)?;
        Ok((cbytes, digest, c))
    };
    let chosen = if cands.len() == 1 {
        cands[0]
    } else {
        let mut matching = Vec::new();
        let mut offered = Vec::new();
        for e in cands {
            let p = config_platform(&load(e)?.2);
            if p.satisfies(want) {
                matching.push(e);
            } else if !offered.contains(&p.to_string()) {
                offered.push(p.to_string());
            }
        }
        match matching.len() {
            0 => {
                return Err(Error::Platform {
                    source_path: src.display.clone(),
                    wanted: want.to_string(),
                    offered: offered.join(", "),
                })
            }
            1 => matching[0],
            _ => {
                let list: Vec<String> = matching
                    .iter()
                    .map(|e| {
                        names_of(e)
                            .first()
                            .cloned()
                            .unwrap_or_else(|| e.config.clone())
                    })
                    .collect();
                return Err(Error::Invalid(format!(
                    "{}: holds several images ({}); pass a name to choose one",
                    src.display,
                    list.join(", ")
                )));
            }
        }
    };
    let (cbytes, cdigest, config) = load(chosen)?;
    let mut layers = Vec::new();
    for l in &chosen.layers {
        let member = clean(l).filter(|m| !m.is_empty()).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: manifest.json: bad layer path {l:?}",
                src.display
            ))
        })?;
        layers.push(LayerSrc {
            member,
            expected: None,
            media_type: String::new(),
        });
    }
    finish(
        src,
        None,
        cbytes,
        cdigest,
        config,
        layers,
        names_of(chosen),
        want,
    )
}

/// The OCI manifest of a docker-archive image, once its layer blobs are
/// known: (digest, size, media type) per layer.
pub(crate) fn synthesize_manifest(
    config_digest: &str,
    config_size: u64,
    layers: &[(String, u64, String)],
) -> Vec<u8> {
    let m = ManifestJson {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: OCI_CONFIG.into(),
            digest: config_digest.into(),
            size: config_size,
            platform: None,
            annotations: BTreeMap::new(),
        },
        layers: layers
            .iter()
            .map(|(digest, size, mt)| Descriptor {
                media_type: mt.clone(),
                digest: digest.clone(),
                size: *size,
                platform: None,
                annotations: BTreeMap::new(),
            })
            .collect(),
    };
    serde_json::to_vec(&m).expect("a manifest serializes")
}

/// Layer blob digests listed by a stored manifest.
pub(crate) fn manifest_layers(
    bytes: &[u8],
) -> std::result::Result<(String, Vec<(String, u64)>), String> {
    let m: ManifestJson = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok((
        m.config.digest,
        m.layers.into_iter().map(|l| (l.digest, l.size)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64").unwrap();
        assert_eq!(p.to_string(), "linux/arm64");
        assert!(Platform::parse("linux/arm64/v8").unwrap().variant.is_some());
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v7").is_err());
        let img = |a: &str, v: Option<&str>| Platform {
            os: "linux".into(),
            arch: a.into(),
            variant: v.map(String::from),
        };
        assert!(img("arm64", None).satisfies(&Platform::parse("linux/arm64/v8").unwrap()));
        assert!(img("arm64", Some("v8")).satisfies(&Platform::parse("linux/arm64").unwrap()));
        assert!(!img("arm", Some("v6")).satisfies(&Platform::parse("linux/arm/v7").unwrap()));
        assert!(!img("amd64", None).satisfies(&Platform::parse("linux/arm64").unwrap()));
        assert_eq!(Platform::parse("linux/x86_64").unwrap().arch, "amd64");
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.arch, "amd64");
        }
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean("./a//b/").as_deref(), Some("a/b"));
        assert_eq!(clean("a/../b").as_deref(), Some("b"));
        assert_eq!(clean("../b"), None);
        assert_eq!(
            hex_in_name(&format!("{}.json", "a".repeat(64))),
            Some(&*"a".repeat(64))
        );
        assert_eq!(hex_in_name("abc/layer.tar"), None);
    }
}
