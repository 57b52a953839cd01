//! Number -> name tables (capabilities, errnos, signals, rlimits).

/// Capability names indexed by capability number (0..=40).
pub const CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Sorted (alphabetical) cap names for the bits set in `mask`.
/// Unknown bits (>40) are named "CAP_<n>".
pub fn cap_names(mask: u64) -> Vec<String> {
    let mut v: Vec<String> = (0..64)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(|bit| match CAPS.get(bit) {
            Some(n) => n.to_string(),
            None => format!("CAP_{}", bit),
        })
        .collect();
    v.sort();
    v
}

macro_rules! named {
    ($ty:ty; $($n:ident),* $(,)?) => { &[$((libc::$n as $ty, stringify!($n))),*] };
}

const ERRNOS: &[(i32, &str)] = named!(i32;
    EPERM, ENOENT, ESRCH, EINTR, EIO, ENXIO, E2BIG, ENOEXEC, EBADF, ECHILD,
    EAGAIN, ENOMEM, EACCES, EFAULT, ENOTBLK, EBUSY, EEXIST, EXDEV, ENODEV,
    ENOTDIR, EISDIR, EINVAL, ENFILE, EMFILE, ENOTTY, ETXTBSY, EFBIG, ENOSPC,
    ESPIPE, EROFS, EMLINK, EPIPE, EDOM, ERANGE, EDEADLK, ENAMETOOLONG, ENOLCK,
    ENOSYS, ENOTEMPTY, ELOOP, ENOMSG, EIDRM, ENOSTR, ENODATA, ETIME, ENOSR,
    ENOLINK, EPROTO, EBADMSG, EOVERFLOW, EILSEQ, EUSERS, ENOTSOCK,
    EDESTADDRREQ, EMSGSIZE, EPROTOTYPE, ENOPROTOOPT, EPROTONOSUPPORT,
    ESOCKTNOSUPPORT, EOPNOTSUPP, EPFNOSUPPORT, EAFNOSUPPORT, EADDRINUSE,
    EADDRNOTAVAIL, ENETDOWN, ENETUNREACH, ENETRESET, ECONNABORTED, ECONNRESET,
    ENOBUFS, EISCONN, ENOTCONN, ESHUTDOWN, ETOOMANYREFS, ETIMEDOUT,
    ECONNREFUSED, EHOSTDOWN, EHOSTUNREACH, EALREADY, EINPROGRESS, ESTALE,
    EDQUOT, ECANCELED, ENOKEY, EKEYEXPIRED, EKEYREVOKED, EKEYREJECTED,
    EOWNERDEAD, ENOTRECOVERABLE, ERFKILL, EHWPOISON, ENOMEDIUM, EMEDIUMTYPE,
);

/// "EROFS", "EPERM", ...; "E<n>" for numbers not in the table.
pub fn errno_name(e: i32) -> String {
    match ERRNOS.iter().find(|(n, _)| *n == e) {
        Some((_, name)) => name.to_string(),
        None => format!("E{}", e),
    }
}

const SIGNALS: &[(i32, &str)] = named!(i32;
    SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGKILL,
    SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT, SIGCHLD,
    SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGXCPU, SIGXFSZ,
    SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR, SIGSYS,
);

/// Names of the signals in a /proc/self/status Sig* mask (bit n-1 = signal n).
/// Real-time signals are named "SIG<n>".
pub fn signal_names(mask: u64) -> Vec<String> {
    (1..=64)
        .filter(|sig| mask & (1u64 << (sig - 1)) != 0)
        .map(|sig| match SIGNALS.iter().find(|(n, _)| *n == sig) {
            Some((_, name)) => name.to_string(),
            None => format!("SIG{}", sig),
        })
        .collect()
}

pub const RLIMITS: &[(libc::__rlimit_resource_t, &str)] = named!(libc::__rlimit_resource_t;
    RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_DATA, RLIMIT_STACK, RLIMIT_CORE, RLIMIT_RSS,
    RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_MEMLOCK, RLIMIT_AS, RLIMIT_LOCKS,
    RLIMIT_SIGPENDING, RLIMIT_MSGQUEUE, RLIMIT_NICE, RLIMIT_RTPRIO, RLIMIT_RTTIME,
);
