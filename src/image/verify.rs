//! Layer manifests and `verify`.
//!
//! When a layer is unpacked, a manifest of what it holds is written beside
//! it (`layers/<hex>.manifest`, one JSON object per line, sorted by path):
//! path, type, mode (with setuid/setgid/sticky), uid, gid, size, the sha256
//! of a file's content, a symlink's target, and xattrs. `verify` re-hashes
//! an image's blobs (and their uncompressed digests), re-walks its layer
//! directories and reports every difference.

use super::store::{Record, Store};
use super::{hex, io_err, sys, Compression, HashReader};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// One path of a layer directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// Relative path, `%XX`-escaped outside printable ASCII (`.` is the root).
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// xattr name -> hex of its value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
}

/// Printable ASCII as is, anything else (and `%`) as `%XX`.
fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x21..0x7f).contains(&b) && b != b'%' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut h = Sha256::new();
    let mut r = BufReader::with_capacity(1 << 16, f);
    let mut n = 0u64;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        h.update(buf);
        n += buf.len() as u64;
        let len = buf.len();
        r.consume(len);
    }
    Ok((hex(&h.finalize()), n))
}

fn describe(root: &Path, rel: &[u8]) -> io::Result<Entry> {
    let p = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(std::ffi::OsStr::from_bytes(rel))
    };
    let m = fs::symlink_metadata(&p)?;
    let ft = m.file_type();
    let mut e = Entry {
        path: if rel.is_empty() {
            ".".into()
        } else {
            escape(rel)
        },
        kind: String::new(),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: 0,
        sha256: None,
        target: None,
        xattrs: BTreeMap::new(),
    };
    if ft.is_dir() {
        e.kind = "dir".into();
    } else if ft.is_file() {
        let (sum, n) = hash_file(&p)?;
        e.kind = "file".into();
        e.size = n;
        e.sha256 = Some(sum);
    } else if ft.is_symlink() {
        e.kind = "symlink".into();
        e.mode = 0o777;
        e.target = Some(escape(fs::read_link(&p)?.as_os_str().as_bytes()));
    } else if ft.is_char_device() && m.rdev() == 0 {
        e.kind = "whiteout".into();
    } else if ft.is_char_device() {
        e.kind = format!("chardev {}", m.rdev());
    } else if ft.is_block_device() {
        e.kind = format!("blockdev {}", m.rdev());
    } else if ft.is_fifo() {
        e.kind = "fifo".into();
    } else {
        e.kind = "socket".into();
    }
    for (k, v) in sys::lxattrs(&p)? {
        e.xattrs.insert(escape(&k), hex(&v));
    }
    Ok(e)
}

/// Every path under `root` (root included), sorted.
pub(crate) fn walk(root: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut todo: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(rel) = todo.pop() {
        let e = describe(root, &rel)?;
        let is_dir = e.kind == "dir";
        out.push(e);
        if is_dir {
            let dir = if rel.is_empty() {
                root.to_path_buf()
            } else {
                root.join(std::ffi::OsStr::from_bytes(&rel))
            };
            for child in fs::read_dir(&dir)? {
                let name = child?.file_name();
                let mut r = rel.clone();
                if !r.is_empty() {
                    r.push(b'/');
                }
                r.extend_from_slice(name.as_bytes());
                todo.push(r);
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

pub(crate) fn write_manifest(layer_dir: &Path, out: &Path) -> io::Result<()> {
    let entries = walk(layer_dir)?;
    let mut w = io::BufWriter::new(fs::File::create(out)?);
    for e in &entries {
        serde_json::to_writer(&mut w, e)?;
        w.write_all(b"\n")?;
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()
}

fn read_manifest(path: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for line in BufReader::new(fs::File::open(path)?).lines() {
        let line = line?;
        if !line.is_empty() {
            out.push(serde_json::from_str(&line)?);
        }
    }
    Ok(out)
}

/// What differs between the recorded and the current entries.
fn compare(layer: &str, expected: &[Entry], actual: &[Entry]) -> Vec<String> {
    let exp: BTreeMap<&str, &Entry> = expected.iter().map(|e| (e.path.as_str(), e)).collect();
    let act: BTreeMap<&str, &Entry> = actual.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut problems = Vec::new();
    for (path, e) in &exp {
        match act.get(path) {
            None => problems.push(format!("layer {layer}: {path} is missing")),
            Some(a) if a != e => {
                let mut what = Vec::new();
                if a.kind != e.kind {
                    what.push(format!("type {} (was {})", a.kind, e.kind));
                }
                if a.mode != e.mode {
                    what.push(format!("mode {:o} (was {:o})", a.mode, e.mode));
                }
                if (a.uid, a.gid) != (e.uid, e.gid) {
                    what.push(format!(
                        "owner {}:{} (was {}:{})",
                        a.uid, a.gid, e.uid, e.gid
                    ));
                }
                if a.size != e.size || a.sha256 != e.sha256 {
                    what.push("content changed".into());
                }
                if a.target != e.target {
                    what.push(format!(
                        "symlink target {} (was {})",
                        a.target.as_deref().unwrap_or("-"),
                        e.target.as_deref().unwrap_or("-")
                    ));
                }
                if a.xattrs != e.xattrs {
                    what.push("xattrs changed".into());
                }
                problems.push(format!("layer {layer}: {path}: {}", what.join(", ")));
            }
            Some(_) => {}
        }
    }
    for path in act.keys() {
        if !exp.contains_key(path) {
            problems.push(format!("layer {layer}: {path} was added"));
        }
    }
    problems
}

/// sha256 of a stored blob's uncompressed content.
fn uncompressed_digest(path: &Path) -> io::Result<String> {
    let comp = Compression::of_file(path)?;
    let f = fs::File::open(path)?;
    let r: Box<dyn Read> = comp.decoder(BufReader::with_capacity(1 << 16, f))?;
    Ok(HashReader::new(r).finish()?.0)
}

/// Every problem found with the image `rec`: blobs, layers, mountpoints.
pub(crate) fn verify_record(store: &Store, rec: &Record) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check_blob = |kind: &str, digest: &str, size: Option<u64>, diff_id: Option<&str>| {
        let path = store.blob_path(digest);
        let (actual, n) = match hash_file(&path) {
            Ok((sum, n)) => (format!("sha256:{sum}"), n),
            Err(e) => return problems.push(format!("{kind} blob {digest}: {}", io_err(&path)(e))),
        };
        if actual != digest {
            return problems.push(format!("{kind} blob {digest} has digest {actual}"));
        }
        if let Some(s) = size.filter(|s| *s != n) {
            problems.push(format!(
                "{kind} blob {digest} is {n} bytes, the record says {s}"
            ));
        }
        if let Some(want) = diff_id {
            match uncompressed_digest(&path) {
                Ok(got) if got == want => {}
                Ok(got) => problems.push(format!(
                    "layer blob {digest} unpacks to {got}, the config says {want}"
                )),
                Err(e) => problems.push(format!("layer blob {digest}: decompressing: {e}")),
            }
        }
    };
    check_blob("manifest", &rec.digest, None, None);
    check_blob("config", &rec.config_digest, None, None);
    for (b, diff_id) in rec.blobs.iter().zip(&rec.layers) {
        check_blob("layer", &b.digest, Some(b.size), Some(diff_id));
    }
    // The stored manifest must name what the record names.
    if let Ok(bytes) = fs::read(store.blob_path(&rec.digest)) {
        match super::formats::manifest_layers(&bytes) {
            Ok((config, layers)) => {
                let recorded: Vec<(String, u64)> = rec
                    .blobs
                    .iter()
                    .map(|b| (b.digest.clone(), b.size))
                    .collect();
                if config != rec.config_digest || layers != recorded {
                    problems.push(format!(
                        "manifest {} does not match the image record",
                        rec.digest
                    ));
                }
            }
            Err(e) => problems.push(format!("manifest {}: {e}", rec.digest)),
        }
    }
    let mut seen = std::collections::HashSet::new();
    for diff_id in &rec.layers {
        if !seen.insert(diff_id) {
            continue;
        }
        let dir = store.layer_dir(diff_id);
        let man = store.layer_manifest(diff_id);
        if !dir.is_dir() {
            problems.push(format!("layer {diff_id}: {} is missing", dir.display()));
            continue;
        }
        let expected = match read_manifest(&man) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("layer {diff_id}: manifest {}: {e}", man.display()));
                continue;
            }
        };
        match walk(&dir) {
            Ok(actual) => problems.extend(compare(diff_id, &expected, &actual)),
            Err(e) => problems.push(format!("layer {diff_id}: walking {}: {e}", dir.display())),
        }
    }
    let mp = store.mountpoints_dir(&rec.digest);
    if !mp.is_dir() {
        problems.push(format!("mountpoints {} are missing", mp.display()));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape(b"bin/sh"), "bin/sh");
        assert_eq!(escape(b"a b%\xff"), "a%20b%25%FF");
    }
}
