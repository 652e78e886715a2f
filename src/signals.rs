//! Synchronous signal handling: the lifecycle signals are blocked in every thread and
//! received by the supervising thread with `sigtimedwait`, so no async-signal-safe
//! handler code is needed and the data-path threads are never interrupted.

use std::io;
use std::time::Duration;

/// A signal ringway acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: graceful stop (a second one: stop now).
    Terminate,
    /// SIGINT: stop now.
    Interrupt,
    /// SIGHUP: reload the config.
    Hangup,
}

/// The set of blocked lifecycle signals, to wait on.
pub struct SignalSet {
    set: libc::sigset_t,
}

impl SignalSet {
    /// Block SIGTERM, SIGINT and SIGHUP in the calling thread; threads spawned afterwards
    /// inherit the mask. Call before spawning any thread.
    pub fn block_lifecycle_signals() -> io::Result<SignalSet> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t owned by this frame; the calls only write it
        // and the thread's signal mask.
        let rc = unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(SignalSet { set })
    }

    /// Wait up to `timeout` for one of the signals.
    pub fn wait(&self, timeout: Duration) -> Option<Signal> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `self.set` is an initialised sigset_t, `ts` a valid timespec, and a
        // null siginfo pointer is allowed.
        let signo = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        match signo {
            libc::SIGTERM => Some(Signal::Terminate),
            libc::SIGINT => Some(Signal::Interrupt),
            libc::SIGHUP => Some(Signal::Hangup),
            _ => None,
        }
    }
}
