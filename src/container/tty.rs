//! `run` with `process.terminal` and no `--console-socket`: mica receives the
//! pty master itself and connects it to its own stdin/stdout, as runc does.

use nix::sys::signal::SigSet;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A connected pair: one end goes to the container as its console socket.
pub fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    Ok((OwnedFd::from(a), OwnedFd::from(b)))
}

/// Receive the pty master sent with SCM_RIGHTS.
pub fn recv_master(sock: &OwnedFd) -> std::io::Result<OwnedFd> {
    let mut buf = [0u8; 64];
    let mut cmsg = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut _,
        iov_len: buf.len(),
    };
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cmsg.as_mut_ptr() as *mut _;
    mh.msg_controllen = cmsg.len() as _;
    if unsafe { libc::recvmsg(sock.as_raw_fd(), &mut mh, libc::MSG_CMSG_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let c = unsafe { libc::CMSG_FIRSTHDR(&mh) };
    if c.is_null() || unsafe { (*c).cmsg_type } != libc::SCM_RIGHTS {
        return Err(std::io::Error::other("no terminal fd received"));
    }
    let mut fd = 0i32;
    unsafe { std::ptr::copy_nonoverlapping(libc::CMSG_DATA(c), &mut fd as *mut i32 as *mut u8, 4) };
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn copy_winsize(from: BorrowedFd, to: BorrowedFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0 {
        unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}

fn pump(from: i32, to: i32) -> bool {
    let mut buf = [0u8; 8192];
    let n = unsafe { libc::read(from, buf.as_mut_ptr() as *mut _, buf.len()) };
    if n <= 0 {
        return false;
    }
    let mut off = 0;
    while off < n as usize {
        let w = unsafe { libc::write(to, buf[off..].as_ptr() as *const _, n as usize - off) };
        if w <= 0 {
            return false;
        }
        off += w as usize;
    }
    true
}

/// Proxy stdin -> master -> stdout until `pid` exits; forward signals.
/// Returns the exit status (128+N for a signal).
pub fn proxy_wait(master: OwnedFd, pid: i32, mask: &SigSet) -> i32 {
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, &raw);
        copy_winsize(stdin.as_fd(), master.as_fd());
    }
    let code = (|| {
        let Ok(sfd) = SignalFd::with_flags(mask, SfdFlags::SFD_CLOEXEC) else {
            return 255;
        };
        let mut stdin_open = true;
        let mut master_open = true;
        loop {
            if let Some(code) = super::create::reap(pid) {
                // Drain what the process wrote before it exited.
                while master_open && pump(master.as_raw_fd(), 1) {}
                return code;
            }
            let mut fds = [
                libc::pollfd {
                    fd: sfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if master_open { master.as_raw_fd() } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if stdin_open { 0 } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) } < 0 {
                continue;
            }
            if fds[1].revents != 0 && !pump(master.as_raw_fd(), 1) {
                master_open = false;
            }
            if fds[2].revents != 0 && !pump(0, master.as_raw_fd()) {
                stdin_open = false;
            }
            if fds[0].revents != 0 {
                if let Ok(Some(info)) = sfd.read_signal() {
                    match info.ssi_signo as i32 {
                        _ if super::create::self_raised(info.ssi_pid as i32) => {}
                        libc::SIGCHLD => {}
                        libc::SIGWINCH => copy_winsize(stdin.as_fd(), master.as_fd()),
                        sig => unsafe {
                            libc::kill(pid, sig);
                        },
                    }
                }
            }
        }
    })();
    if let Some(t) = &saved {
        let _ = termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, t);
    }
    code
}
