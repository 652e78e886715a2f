//! Process lifecycle: load the config, bind every worker's sockets, start the workers and
//! wait for them.

use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::control::{
    bind_for_workers, BoundSocket, Command, ControlHandle, ControlSpec, ReloadOutcome,
};
use crate::lifecycle::Lifecycle;
use crate::metrics::Registry;
use crate::signals::{Signal, SignalSet};
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::worker::{self, Driver, WorkerSpec};

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

/// Say what `prepare_descriptors` changed, or why it could not.
fn log_descriptors(prepared: std::io::Result<crate::sys::Descriptors>) {
    match prepared {
        Ok(d) => {
            if d.limit != d.inherited {
                crate::log::info(format_args!(
                    "open file limit raised from {} to {} (the hard limit)",
                    d.inherited, d.limit
                ));
            }
            if d.reserved == 0 {
                crate::log::warn(format_args!(
                    "could not reserve the descriptor table; it grows under load instead"
                ));
            }
        }
        Err(e) => crate::log::warn(format_args!("cannot read the open file limit: {e}")),
    }
}

/// Load `path`, start the workers and the control thread, and serve until stopped.
pub fn run(path: &Path, overrides: &Overrides) -> Result<(), RunError> {
    let mut config = Config::load(path).map_err(RunError::Config)?;
    let driver = Driver::from_env().map_err(RunError::Startup)?;
    let workers = worker_count(&config, overrides);
    let mut sockets = bind_all(&mut config, workers)?;
    let config = Arc::new(config);
    let shared = Arc::new(SharedSnapshot::new(Snapshot::initial(config.clone())));
    let lifecycle = Arc::new(Lifecycle::new());
    // Before any thread exists: growing the descriptor table later would make a worker
    // wait for an RCU grace period in the middle of a burst of connections.
    log_descriptors(crate::sys::prepare_descriptors());
    if let Err(e) = crate::sys::disable_transparent_huge_pages() {
        crate::log::warn(format_args!(
            "cannot turn transparent huge pages off ({e}); new memory may stall a worker"
        ));
    }
    // Block the stop and reload signals before any thread exists, so every thread
    // inherits the mask and only this thread receives them, synchronously.
    let signals = SignalSet::block_lifecycle_signals()
        .map_err(|e| RunError::Startup(format!("cannot set up signal handling: {e}")))?;

    let (passive, passive_rx, dropped) = crate::control::passive_channel();
    let registry = Arc::new(Registry::new());
    let (histograms_tx, histograms_rx) = crossbeam_channel::unbounded();
    let admin = match config.admin {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| RunError::Startup(format!("admin: cannot bind {addr}: {e}")))?,
        ),
        None => None,
    };
    if let Some(admin) = &admin {
        if let Ok(addr) = admin.local_addr() {
            crate::log::info(format_args!("admin listening on {addr}"));
        }
    }
    let mut socket_senders = Vec::with_capacity(workers);
    let mut socket_receivers = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = crossbeam_channel::unbounded();
        socket_senders.push(tx);
        socket_receivers.push(rx);
    }
    let control = crate::control::spawn(
        ControlSpec {
            path: path.to_path_buf(),
            shared: shared.clone(),
            worker_sockets: socket_senders,
            workers,
            registry: registry.clone(),
            histograms: histograms_rx,
            lifecycle: lifecycle.clone(),
            admin,
        },
        passive_rx,
        dropped,
    )
    .map_err(|e| RunError::Startup(format!("cannot start the control thread: {e}")))?;

    // One writer thread for every listener's access log, fed in batches so a worker
    // never waits on the terminal or a pipe.
    let access_log = crate::access_log::AccessLogSink::stdout(registry.access_log_dropped());
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::with_capacity(workers);
    for (index, new_listeners) in socket_receivers.into_iter().enumerate() {
        let listeners = sockets
            .iter_mut()
            .map(|(name, per_worker)| (name.clone(), per_worker.remove(0)))
            .collect();
        let spec = WorkerSpec {
            index,
            workers,
            core: (!cores.is_empty()).then(|| cores[index % cores.len()]),
            listeners,
            new_listeners,
            passive: passive.clone(),
            ready: ready_tx.clone(),
            registry: registry.clone(),
            histograms: histograms_tx.clone(),
            shared: shared.clone(),
            lifecycle: lifecycle.clone(),
            driver,
            access_log: access_log.clone(),
        };
        let handle = worker::spawn(spec)
            .map_err(|e| RunError::Startup(format!("cannot start worker {index}: {e}")))?;
        handles.push(handle);
    }
    // Ready means every worker accepts: wait for each to say so (or to have failed).
    let mut started = 0;
    while started < workers {
        match ready_rx.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(_) => started += 1,
            Err(_) if handles.iter().any(|h| h.is_finished()) => break,
            Err(_) => {}
        }
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
    crate::sdnotify::notify("READY=1");
    supervise(&signals, &lifecycle, &config, &control, &handles);
    for (index, handle) in handles.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(RunError::Startup(format!("worker {index}: {e}"))),
            Err(_) => return Err(RunError::Startup(format!("worker {index} panicked"))),
        }
    }
    // Every worker has flushed its last lines; write them out before exiting.
    access_log.shutdown();
    Ok(())
}

/// How long a reload may take before the supervisor stops waiting for its outcome.
const RELOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Wait for signals until every worker has finished.
///
/// SIGTERM starts a graceful stop (workers stop accepting and finish in-flight work for
/// up to `shutdown_grace`); SIGINT or a second SIGTERM stops at once; SIGHUP reloads.
fn supervise(
    signals: &SignalSet,
    lifecycle: &Lifecycle,
    config: &Config,
    control: &ControlHandle,
    workers: &[std::thread::JoinHandle<std::io::Result<()>>],
) {
    while !workers.iter().all(|w| w.is_finished()) {
        match signals.wait(SUPERVISE_TICK) {
            Some(Signal::Terminate) if !lifecycle.is_draining() => {
                // Draining first, then the word: whoever reads "draining" in the log
                // (an operator, a test) must find `/ready` already answering 503.
                lifecycle.start_draining(std::time::Instant::now(), config.shutdown_grace);
                crate::sdnotify::notify("STOPPING=1");
                crate::log::info(format_args!(
                    "SIGTERM: draining for up to {:?}; no new connections are accepted",
                    config.shutdown_grace
                ));
            }
            Some(Signal::Terminate) | Some(Signal::Interrupt) => {
                crate::log::info(format_args!("stopping now"));
                crate::sdnotify::notify("STOPPING=1");
                // Off the ports first: exiting alone would leave any listener with an
                // accept in flight on a worker's ring listening until the kernel tears
                // the ring down, after the process is gone (`sys::stop_listening`).
                crate::sys::stop_all_listening();
                std::process::exit(0);
            }
            Some(Signal::Hangup) => {
                crate::log::info(format_args!("SIGHUP: reloading the config"));
                let _ = reload(control);
            }
            None => {}
        }
    }
    if lifecycle.is_draining() {
        crate::log::info(format_args!("drained; exiting"));
    }
}

/// Ask the control thread to reload and wait for the outcome, telling systemd around it.
pub fn reload(control: &ControlHandle) -> Option<ReloadOutcome> {
    crate::sdnotify::notify("RELOADING=1");
    let (tx, rx) = crossbeam_channel::bounded(1);
    let outcome = control
        .commands
        .send(Command::Reload(tx))
        .ok()
        .and_then(|()| rx.recv_timeout(RELOAD_WAIT).ok());
    crate::sdnotify::notify("READY=1");
    outcome
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
) -> Result<Vec<(String, Vec<BoundSocket>)>, RunError> {
    let mut all = Vec::with_capacity(config.listeners.len());
    for listener in &mut config.listeners {
        let (addr, sockets) = bind_for_workers(listener, workers).map_err(RunError::Startup)?;
        listener.bind = addr;
        all.push((listener.name.clone(), sockets));
    }
    Ok(all)
}
