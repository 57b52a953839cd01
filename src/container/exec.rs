//! exec: run another process in a running container.

use super::create::{
    block_signals, console_ends, load_spec, receive_terminal, wait_process, write_pid_file,
};
use super::error::{Error, Result};
use super::state::{Dir, Status};
use crate::launch::{self, plan};
use oci_spec::runtime::Process;
use std::path::{Path, PathBuf};

#[derive(Default)]
pub struct ExecOptions {
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// "UID[:GID]"
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    pub no_new_privs: bool,
    pub cap: Vec<String>,
}

fn process_for(spec_process: Option<Process>, o: &ExecOptions) -> Result<Process> {
    if let Some(p) = &o.process {
        let data = std::fs::read(p).map_err(|e| Error::io(format!("read {}", p.display()), e))?;
        return serde_json::from_slice(&data)
            .map_err(|e| Error::Config(format!("{}: {e}", p.display())));
    }
    if o.args.is_empty() {
        return Err(Error::Config(
            "exec needs a command (ARGS or --process)".into(),
        ));
    }
    let mut p = spec_process.unwrap_or_default();
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    let mut env = p.env().clone().unwrap_or_default();
    for e in &o.env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(c) = &o.cwd {
        p.set_cwd(c.clone());
    }
    if let Some(u) = &o.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let uid = uid
            .parse()
            .map_err(|_| Error::Config(format!("invalid --user {u:?}: need UID[:GID]")))?;
        let gid = gid
            .parse()
            .map_err(|_| Error::Config(format!("invalid --user {u:?}: need UID[:GID]")))?;
        let mut user = p.user().clone();
        user.set_uid(uid);
        user.set_gid(gid);
        p.set_user(user);
    }
    if !o.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(o.additional_gids.clone()));
        p.set_user(user);
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !o.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let add = |set: Option<oci_spec::runtime::Capabilities>| -> Result<oci_spec::runtime::Capabilities> {
            let mut set = set.unwrap_or_default();
            for c in &o.cap {
                // runc's form (CAP_SYS_ADMIN) or the bare name (SYS_ADMIN);
                // oci-spec parses the name without its CAP_.
                let cap: oci_spec::runtime::Capability = crate::spec::launch::cap_name(c)
                    ["CAP_".len()..]
                    .parse()
                    .map_err(|_| Error::Config(format!("unknown capability {c:?}")))?;
                set.insert(cap);
            }
            Ok(set)
        };
        caps.set_bounding(Some(add(caps.bounding().clone())?));
        caps.set_effective(Some(add(caps.effective().clone())?));
        caps.set_permitted(Some(add(caps.permitted().clone())?));
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

/// Returns the exit status of the process (0 when detached).
pub fn exec(root: &Path, id: &str, o: &ExecOptions) -> Result<i32> {
    let dir = Dir::open(root, id)?;
    let st = dir.load()?.ok_or_else(|| Error::NotFound(id.to_string()))?;
    let status = st.status();
    if status != Status::Running && status != Status::Created {
        return Err(Error::WrongState {
            op: "exec in",
            id: id.to_string(),
            status,
        });
    }
    let mut spec = load_spec(&st.bundle)?;
    let process = process_for(spec.process().clone(), o)?;
    let terminal = process.terminal().unwrap_or(false);
    spec.set_process(Some(process));
    let (console, own_tty) = console_ends(o.console_socket.as_deref(), terminal, o.detach)?;
    let plan = plan::build(
        &spec,
        plan::Options {
            kind: plan::Kind::Exec,
            bundle: &st.bundle,
            no_pivot: false,
            console_socket: console,
            preserve_fds: o.preserve_fds,
            exec_fifo: None,
            join_pid: Some(st.init.pid),
            cgroup: st.cgroup.as_ref(),
            // The container's keyring, joined by name, as runc's exec does.
            session_keyring: (!st.no_new_keyring).then(|| super::state::session_keyring(&st.id)),
            listen: None,
        },
    )?;
    let mask = block_signals();
    let mut spawned = launch::spawn(plan, st.cgroup.as_ref())?;
    // The container may be deleted while this process runs.
    drop(dir);
    let r = (|| -> Result<Option<std::os::fd::OwnedFd>> {
        spawned.go(|_| Vec::new())?;
        spawned.wait_ready(|| Ok(()))?;
        let master = receive_terminal(own_tty.as_ref())?;
        spawned.wait_exec()?;
        if let Some(p) = &o.pid_file {
            write_pid_file(p, spawned.pid())?;
        }
        Ok(master)
    })();
    let master = match r {
        Ok(m) => m,
        Err(e) => {
            spawned.kill();
            return Err(e);
        }
    };
    if o.detach {
        return Ok(0);
    }
    Ok(wait_process(master, spawned.pid(), &mask))
}
