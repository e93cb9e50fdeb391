//! systemd notifications (`sd_notify(3)`) for `roster run` under `Type=notify`.
//!
//! A thin wrapper over the `sd-notify` crate: every function is a no-op returning `Ok` when
//! `NOTIFY_SOCKET` is unset (a terminal, a container without systemd, tests), and a failure to
//! notify is logged with `tracing::warn!` and returned, never fatal: the daemon keeps syncing
//! whether or not the service manager hears about it. Callers may ignore the result.
//!
//! It does not decide *when* to notify; the daemon's event loop does, as each function's doc
//! says. It does not unset `NOTIFY_SOCKET` (that needs `unsafe` env mutation, which the crate
//! forbids); nothing the daemon spawns speaks the protocol.

use std::io;
use std::time::Duration;

use sd_notify::NotifyState;

/// Startup is done: the config loaded, the state database opened (migrations applied), the
/// admin listener bound and the schedules armed. systemd holds `systemctl start` (and units
/// ordered after roster) until this arrives, and kills the service if it never does within
/// `TimeoutStartSec=`. Sent once.
pub fn ready() -> io::Result<()> {
    send("READY", &[NotifyState::Ready])
}

/// A reload began (SIGHUP or a config file change), before the new config is loaded. Follow it
/// with [`ready`] when the reload finished, applied or rejected (a rejected reload keeps the old
/// config running, so the service is ready either way), and a [`status`] saying which.
///
/// Sends `RELOADING=1` with `MONOTONIC_USEC=<now>`, as systemd.service(5) requires for
/// `Type=notify-reload` (systemd 253+, which matches the reload to the timestamp). Under
/// `Type=notify` on systemd 252 (Debian 12) the unit shows "reloading" until the next
/// `READY=1`; the extra field is ignored.
pub fn reloading() -> io::Result<()> {
    let now = NotifyState::monotonic_usec_now().inspect_err(|e| {
        tracing::warn!(error = %e, "could not read the monotonic clock for systemd");
    })?;
    send("RELOADING", &[NotifyState::Reloading, now])
}

/// A one-line status for `systemctl status roster` (e.g. "3 sources, last sync 12:00 ok,
/// 0 events pending"). Sent after startup, after each sync and after each reload. systemd keeps
/// only the latest; a newline in `msg` would end the field, so it is replaced by a space.
pub fn status(msg: &str) -> io::Result<()> {
    let msg = msg.replace('\n', " ");
    send("STATUS", &[NotifyState::Status(&msg)])
}

/// Shutdown began (SIGTERM or SIGINT): scheduling stopped and a sync in flight is finishing or
/// rolling back. Sent once, before the bounded graceful stop; systemd then waits up to
/// `TimeoutStopSec=` for the process to exit.
pub fn stopping() -> io::Result<()> {
    send("STOPPING", &[NotifyState::Stopping])
}

/// "Still alive": sent every [`watchdog_interval`] by the event loop itself (not a separate
/// thread), so a wedged loop stops pinging and systemd restarts the service after
/// `WatchdogSec=`.
pub fn watchdog() -> io::Result<()> {
    send("WATCHDOG", &[NotifyState::Watchdog])
}

/// How often to call [`watchdog`]: half of `WATCHDOG_USEC` (as sd_watchdog_enabled(3)
/// recommends), when systemd enabled the watchdog for this process (`WatchdogSec=` set and
/// `WATCHDOG_PID`, if present, is our PID). `None`: do not ping.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|d| !d.is_zero())
        .map(|d| d / 2)
}

/// Sends `states` in one datagram; logs and returns a failure.
fn send(what: &str, states: &[NotifyState<'_>]) -> io::Result<()> {
    sd_notify::notify(states).inspect_err(|e| {
        tracing::warn!(error = %e, notification = what, "could not notify systemd");
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;
    use std::process::Command;

    use super::*;

    /// Marks the child process spawned by `notifications_reach_the_socket`.
    const CHILD: &str = "ROSTER_NOTIFY_TEST_CHILD";

    /// The environment is process-wide and edition 2024 makes `set_var` unsafe (the crate
    /// forbids `unsafe`), so the notifying side runs in a child: this test binary again, running
    /// only `child_notifies`, with `NOTIFY_SOCKET` and `WATCHDOG_USEC` set for it alone.
    #[test]
    fn notifications_reach_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();

        let out = Command::new(std::env::current_exe().unwrap())
            .args(["daemon::notify::tests::child_notifies", "--exact"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "60000000")
            .env_remove("WATCHDOG_PID")
            .output()
            .unwrap();
        assert!(out.status.success(), "child failed: {out:?}");

        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        for _ in 0..6 {
            let n = sock.recv(&mut buf).unwrap();
            got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        assert_eq!(got[0], "READY=1\n");
        assert_eq!(got[1], "STATUS=syncing personio\n");
        let reload: Vec<&str> = got[2].lines().collect();
        assert_eq!(reload[0], "RELOADING=1");
        let usec = reload[1].strip_prefix("MONOTONIC_USEC=").unwrap();
        assert!(usec.parse::<u64>().unwrap() > 0, "{reload:?}");
        assert_eq!(got[3], "WATCHDOG=1\n");
        assert_eq!(got[4], "STOPPING=1\n");
        // The child reports what it computed as a status: half of WATCHDOG_USEC.
        assert_eq!(got[5], "STATUS=watchdog every 30s\n");
    }

    /// The notifying side of `notifications_reach_the_socket`; does nothing when run on its own.
    #[test]
    #[ignore = "run by notifications_reach_the_socket in a child process"]
    fn child_notifies() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        ready().unwrap();
        status("syncing\npersonio").unwrap();
        reloading().unwrap();
        watchdog().unwrap();
        stopping().unwrap();
        let every = watchdog_interval().unwrap();
        status(&format!("watchdog every {}s", every.as_secs())).unwrap();
    }

    /// Without `NOTIFY_SOCKET` everything is a no-op (skipped if the test itself runs under a
    /// service manager that set it).
    #[test]
    fn no_socket_is_a_no_op() {
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            return;
        }
        ready().unwrap();
        status("x").unwrap();
        reloading().unwrap();
        watchdog().unwrap();
        stopping().unwrap();
    }
}
