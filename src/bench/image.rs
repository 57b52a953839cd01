//! An OCI image layout made from the workload's rootfs, for the `mica
//! launch` contenders (one uncompressed layer).

use super::Error;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// The name the bench imports its image under.
pub const REFERENCE: &str = "mica-bench:latest";

struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write blob `data` into `dir/blobs/sha256/`; (digest, size).
fn put_blob(dir: &Path, data: &[u8]) -> Result<(String, u64), Error> {
    let h = hex(&Sha256::digest(data));
    let p = dir.join("blobs/sha256").join(&h);
    std::fs::write(&p, data).map_err(|e| Error::io(format!("write {}", p.display()), e))?;
    Ok((format!("sha256:{h}"), data.len() as u64))
}

/// Make an OCI image layout at `dir` whose one layer is `rootfs` and whose
/// command is `args`.
pub fn build_layout(rootfs: &Path, args: &[String], dir: &Path) -> Result<(), Error> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| Error::io(what, e)
    };
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(io("mkdir image layout"))?;
    let tmp = dir.join("layer.tar.tmp");
    let f = std::fs::File::create(&tmp).map_err(io("create layer"))?;
    let mut w = HashingWriter {
        inner: std::io::BufWriter::new(f),
        hash: Sha256::new(),
        len: 0,
    };
    {
        let mut b = tar::Builder::new(&mut w);
        b.follow_symlinks(false);
        b.mode(tar::HeaderMode::Complete);
        b.append_dir_all(".", rootfs).map_err(io("tar rootfs"))?;
        b.finish().map_err(io("tar rootfs"))?;
    }
    w.flush().map_err(io("write layer"))?;
    let layer_hex = hex(&w.hash.clone().finalize());
    let layer_size = w.len;
    let layer_digest = format!("sha256:{layer_hex}");
    std::fs::rename(&tmp, blobs.join(&layer_hex)).map_err(io("rename layer"))?;
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": args,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/"
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "mica bench"}]
    });
    let (cfg_digest, cfg_size) = put_blob(dir, &serde_json::to_vec(&config)?)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}]
    });
    let (m_digest, m_size) = put_blob(dir, &serde_json::to_vec(&manifest)?)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m_digest, "size": m_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": "latest"}
        }]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)
        .map_err(io("write index.json"))?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(io("write oci-layout"))?;
    Ok(())
}
