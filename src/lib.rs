//! mica: a minimal OCI runtime for immutable micro-containers.
//!
//! Layers (dependencies point down):
//! - `cli`: the command line, runc-compatible
//! - `container`: the OCI lifecycle (state dir, create/start/kill/delete, ...)
//! - `launch`: everything between clone and exec
//! - `cgroups`: v1 / v2 / hybrid behind one interface
//! - `seccomp`: OCI seccomp profile -> BPF
//! - `spec`: OCI configs mica generates (`mica spec`)
//! - `kfile`: reading procfs/sysfs/cgroupfs files in few reads (used by the others)

pub mod bench;
pub mod cgroups;
pub mod cli;
pub mod container;
pub mod image;
pub mod kfile;
pub mod launch;
pub mod log;
#[cfg(target_arch = "x86_64")]
mod mem;
pub mod seccomp;
pub mod spec;
pub mod trace;
