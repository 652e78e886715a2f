//! Process lifecycle: load the config, bind every worker's sockets, start the workers and
//! wait for them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::lifecycle::Lifecycle;
use crate::signals::{Signal, SignalSet};
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::worker::{self, Driver, WorkerSpec};

/// Listen backlog per worker socket; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Why `run` could not start or keep serving.
#[derive(Debug)]
pub enum RunError {
    /// The config file is unreadable or invalid (every problem, with its location).
    Config(Vec<ConfigError>),
    /// A startup step failed (binding a listener, spawning a thread, the driver).
    Startup(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Config(errors) => {
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            RunError::Startup(msg) => f.write_str(msg),
        }
    }
}

/// Options from the command line that override the config file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--workers N`.
    pub workers: Option<usize>,
}

/// The number of workers: the override, else the config, else one per usable core.
pub fn worker_count(config: &Config, overrides: &Overrides) -> usize {
    overrides
        .workers
        .or(config.workers)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// Load `path`, start the workers and serve until the process is stopped.
pub fn run(path: &Path, overrides: &Overrides) -> Result<(), RunError> {
    let config = Config::load(path).map_err(RunError::Config)?;
    let driver = Driver::from_env().map_err(RunError::Startup)?;
    let workers = worker_count(&config, overrides);
    let mut config = config;
    let sockets = bind_all(&mut config, workers)?;
    let config = Arc::new(config);
    let shared = Arc::new(SharedSnapshot::new(Snapshot::initial(config.clone())));
    let lifecycle = Arc::new(Lifecycle::new());
    // Block the stop and reload signals before any worker exists, so every thread
    // inherits the mask and only this thread receives them, synchronously.
    let signals = SignalSet::block_lifecycle_signals()
        .map_err(|e| RunError::Startup(format!("cannot set up signal handling: {e}")))?;

    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::with_capacity(workers);
    for (index, listeners) in sockets.into_iter().enumerate() {
        let spec = WorkerSpec {
            index,
            core: (!cores.is_empty()).then(|| cores[index % cores.len()]),
            listeners,
            shared: shared.clone(),
            lifecycle: lifecycle.clone(),
            driver,
        };
        let handle = worker::spawn(spec)
            .map_err(|e| RunError::Startup(format!("cannot start worker {index}: {e}")))?;
        handles.push(handle);
    }
    let binds: Vec<String> = config
        .listeners
        .iter()
        .map(|l| format!("{}={}", l.name, l.bind))
        .collect();
    crate::log::info(format_args!(
        "ringway {} ready: {workers} workers, listeners: {}",
        env!("CARGO_PKG_VERSION"),
        binds.join(" ")
    ));
    supervise(&signals, &lifecycle, &config, &handles);
    for (index, handle) in handles.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(RunError::Startup(format!("worker {index}: {e}"))),
            Err(_) => return Err(RunError::Startup(format!("worker {index} panicked"))),
        }
    }
    Ok(())
}

/// Wait for signals until every worker has finished.
///
/// SIGTERM starts a graceful stop (workers stop accepting and finish in-flight work for
/// up to `shutdown_grace`); SIGINT or a second SIGTERM stops at once.
fn supervise(
    signals: &SignalSet,
    lifecycle: &Lifecycle,
    config: &Config,
    workers: &[std::thread::JoinHandle<std::io::Result<()>>],
) {
    while !workers.iter().all(|w| w.is_finished()) {
        match signals.wait(SUPERVISE_TICK) {
            Some(Signal::Terminate) if !lifecycle.is_draining() => {
                crate::log::info(format_args!(
                    "SIGTERM: draining for up to {:?}; no new connections are accepted",
                    config.shutdown_grace
                ));
                lifecycle.start_draining(std::time::Instant::now(), config.shutdown_grace);
            }
            Some(Signal::Terminate) | Some(Signal::Interrupt) => {
                crate::log::info(format_args!("stopping now"));
                std::process::exit(0);
            }
            Some(Signal::Hangup) => {
                crate::log::warn(format_args!(
                    "SIGHUP: live reload is not implemented yet; ignored"
                ));
            }
            None => {}
        }
    }
    if lifecycle.is_draining() {
        crate::log::info(format_args!("drained; exiting"));
    }
}

/// How long the supervisor sleeps in `sigtimedwait` before checking the workers again.
const SUPERVISE_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// Bind one `SO_REUSEPORT` socket per listener for every worker, in the main thread, so a
/// bind error (address in use, permission) stops startup with a clear message before any
/// worker runs. A listener on port 0 gets its port from the first bind and every other
/// worker joins that port; the config is updated so logs and tests see the real address.
fn bind_all(
    config: &mut Config,
    workers: usize,
) -> Result<Vec<Vec<std::net::TcpListener>>, RunError> {
    let mut per_worker: Vec<Vec<std::net::TcpListener>> = (0..workers)
        .map(|_| Vec::with_capacity(config.listeners.len()))
        .collect();
    for listener in &mut config.listeners {
        let mut addr: SocketAddr = listener.bind;
        for sockets in per_worker.iter_mut() {
            let socket = crate::sys::reuseport_tcp_listener(addr, LISTEN_BACKLOG).map_err(|e| {
                RunError::Startup(format!(
                    "listener {}: cannot bind {addr}: {e}",
                    listener.name
                ))
            })?;
            if addr.port() == 0 {
                addr = socket
                    .local_addr()
                    .map_err(|e| RunError::Startup(format!("listener {}: {e}", listener.name)))?;
            }
            sockets.push(socket);
        }
        listener.bind = addr;
    }
    Ok(per_worker)
}
