//! The process's file descriptors: the soft limit raised to the hard one, and the kernel's
//! descriptor table grown once at boot instead of under load.
//!
//! Linux grows a process's descriptor table by doubling it when a new descriptor does not fit
//! (at 64, 128, …, 1,024, 2,048), and in a process with more than one thread each growth waits
//! for an RCU grace period: `accept4` returning descriptor 256, 512 and 1,024 took 10–15 ms
//! each (strace), and every thread opening a socket meanwhile waited with it. A fresh gateway's
//! first burst of 1,000 streams (2,000 descriptors: the client's and the upstream's) paid that
//! four times, and its time-to-first-chunk p99 was about 9 ms against 0.3 ms for the next
//! burst. Taking a descriptor near the limit at boot, then closing it, leaves the table at
//! that size (the kernel never shrinks it): a few hundred KiB of kernel memory.

use std::os::fd::RawFd;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The table is grown to cover descriptors below this at most (512 KiB of pointers).
const TABLE_MAX: u64 = 65_536;

/// Raises the soft descriptor limit to the hard one (as Go's runtime does: a gateway holds two
/// descriptors per stream, and 1,024 is a common soft default), then grows the table to the
/// limit, capped at [`TABLE_MAX`]. Returns the table size reserved (0 when none); failures
/// only cost the speed this buys, so they are logged, not raised.
pub fn reserve() -> u64 {
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(soft), hard) = (limit.current, limit.maximum) {
        let wanted = hard.unwrap_or(TABLE_MAX.max(soft));
        if wanted > soft {
            let raised = Rlimit {
                current: Some(wanted),
                maximum: hard,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => limit = raised,
                Err(e) => log::debug!("descriptor limit stays at {soft}: {e}"),
            }
        }
    }
    let top = limit.current.unwrap_or(TABLE_MAX).min(TABLE_MAX);
    if top < 128 {
        return 0;
    }
    // The lowest free descriptor at or above `top - 1`: the table grows to hold it.
    match rustix::io::fcntl_dupfd_cloexec(std::io::stderr(), (top - 1) as RawFd) {
        Ok(fd) => {
            drop(fd);
            top
        }
        Err(e) => {
            log::debug!("descriptor table not reserved: {e}");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    /// `FDSize` in /proc/self/status: the slots the kernel's table has.
    fn table_size() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("FDSize")
    }

    #[test]
    fn the_table_holds_the_limit_after_reserving() {
        let reserved = super::reserve();
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let expected = limit
            .current
            .unwrap_or(super::TABLE_MAX)
            .min(super::TABLE_MAX);
        assert_eq!(reserved, expected, "{limit:?}");
        assert!(
            table_size() >= reserved,
            "table {} < {reserved}",
            table_size()
        );
        if limit.maximum.is_some() {
            assert_eq!(
                limit.current, limit.maximum,
                "soft limit raised to the hard one"
            );
        }
    }
}
