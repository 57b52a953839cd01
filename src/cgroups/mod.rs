//! PLACEHOLDER stub (replaced by the real cgroups layer).
use std::path::Path;
#[derive(Debug, thiserror::Error)]
pub enum Error { #[error("stub")] Stub }
pub type Result<T> = std::result::Result<T, Error>;
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Cgroup { p: Option<std::path::PathBuf> }
impl Cgroup {
    pub fn resolve(_c: Option<&str>, _id: &str) -> Result<Cgroup> { Ok(Cgroup{p:None}) }
    pub fn create(&self) -> Result<()> { Ok(()) }
    pub fn apply(&self, _r: &oci_spec::runtime::LinuxResources) -> Result<()> { Ok(()) }
    pub fn add_process(&self, _pid: i32) -> Result<()> { Ok(()) }
    pub fn v2_dir(&self) -> Option<&Path> { self.p.as_deref() }
    pub fn pids(&self) -> Result<Vec<i32>> { Ok(vec![]) }
    pub fn freeze(&self) -> Result<()> { Ok(()) }
    pub fn thaw(&self) -> Result<()> { Ok(()) }
    pub fn is_frozen(&self) -> Result<bool> { Ok(false) }
    pub fn destroy(&self) -> Result<()> { Ok(()) }
}
