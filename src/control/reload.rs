//! Applying a new config file while traffic flows: validate, bind new listeners, carry
//! health state over for backends that stay, publish, and hand new sockets to workers.
//! A file that fails at any step changes nothing.

use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::{settings, specs, State};
use crate::config::{Config, Listener};
use crate::health::PoolHealth;
use crate::metrics::Registry;

/// Listen backlog per worker socket; the kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: i32 = 4096;

/// A bound listening socket of either kind.
pub enum BoundSocket {
    /// A TCP listener (already listening).
    Tcp(TcpListener),
    /// A UDP socket.
    Udp(std::net::UdpSocket),
}

impl BoundSocket {
    /// The address the socket is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            BoundSocket::Tcp(s) => s.local_addr(),
            BoundSocket::Udp(s) => s.local_addr(),
        }
    }
}

/// A new listener's socket for one worker.
pub struct ListenerSockets {
    /// The listener's name in the config that introduced it.
    pub name: String,
    /// This worker's `SO_REUSEPORT` socket.
    pub socket: BoundSocket,
}

/// What a reload did.
#[derive(Clone, Debug)]
pub struct ReloadOutcome {
    /// Whether the new config is in force.
    pub ok: bool,
    /// One line per error, or a summary of the change.
    pub message: String,
}

/// Bind one `SO_REUSEPORT` socket per worker for `listener`. Port 0 is resolved by the
/// first bind and every other worker joins that port. Returns the real address.
pub fn bind_for_workers(
    listener: &Listener,
    workers: usize,
) -> Result<(SocketAddr, Vec<BoundSocket>), String> {
    let mut addr = listener.bind;
    let mut sockets = Vec::with_capacity(workers);
    for _ in 0..workers {
        let socket = if listener.protocol.is_udp() {
            crate::sys::reuseport_udp_socket(addr).map(BoundSocket::Udp)
        } else {
            crate::sys::reuseport_tcp_listener(addr, LISTEN_BACKLOG).map(BoundSocket::Tcp)
        }
        .map_err(|e| format!("listener {}: cannot bind {addr}: {e}", listener.name))?;
        if addr.port() == 0 {
            addr = socket
                .local_addr()
                .map_err(|e| format!("listener {}: {e}", listener.name))?;
        }
        sockets.push(socket);
    }
    Ok((addr, sockets))
}

pub(super) struct Reloader {
    path: PathBuf,
    worker_sockets: Vec<Sender<ListenerSockets>>,
    workers: usize,
    registry: Arc<Registry>,
}

impl Reloader {
    pub(super) fn new(
        path: PathBuf,
        worker_sockets: Vec<Sender<ListenerSockets>>,
        workers: usize,
        registry: Arc<Registry>,
    ) -> Reloader {
        Reloader {
            path,
            worker_sockets,
            workers,
            registry,
        }
    }

    pub(super) fn reload(&self, state: &Rc<RefCell<State>>) -> ReloadOutcome {
        let outcome = self.try_reload(state);
        self.registry.config_reload(outcome.is_ok());
        match &outcome {
            Ok(summary) => {
                crate::log::info(format_args!("reload: {summary}"));
                ReloadOutcome {
                    ok: true,
                    message: summary.clone(),
                }
            }
            Err(errors) => {
                for e in errors {
                    crate::log::error(format_args!(
                        "reload rejected: {}: {e}",
                        self.path.display()
                    ));
                }
                ReloadOutcome {
                    ok: false,
                    message: errors.join("\n"),
                }
            }
        }
    }

    fn try_reload(&self, state: &Rc<RefCell<State>>) -> Result<String, Vec<String>> {
        let mut config = Config::load(&self.path)
            .map_err(|errors| errors.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        let old = state.borrow().config.clone();
        if config.workers.is_some_and(|w| w != self.workers) {
            crate::log::warn(format_args!(
                "reload: `workers` changes need a restart; keeping {}",
                self.workers
            ));
        }
        // Bind what is new before changing anything, so a bind failure rejects the file.
        let mut fresh: Vec<(String, Vec<BoundSocket>)> = Vec::new();
        for listener in &mut config.listeners {
            let kept = old.listeners.iter().find(|o| {
                o.name == listener.name
                    && o.protocol.is_udp() == listener.protocol.is_udp()
                    && o.bind.ip() == listener.bind.ip()
                    && (o.bind.port() == listener.bind.port() || listener.bind.port() == 0)
            });
            match kept {
                Some(o) => listener.bind = o.bind,
                None => {
                    let (addr, sockets) =
                        bind_for_workers(listener, self.workers).map_err(|e| vec![e])?;
                    listener.bind = addr;
                    fresh.push((listener.name.clone(), sockets));
                }
            }
        }
        let config = Arc::new(config);
        let now = Instant::now();
        {
            let mut st = state.borrow_mut();
            let mut old_health = std::mem::take(&mut st.health);
            st.health = config
                .pools
                .iter()
                .map(|pool| {
                    match old.pools.iter().position(|p| p.name == pool.name) {
                        Some(i) => {
                            let mut health = std::mem::replace(
                                &mut old_health[i],
                                PoolHealth::new(settings(pool), &[], now),
                            );
                            let old_pool = &old.pools[i];
                            // Backends are matched by address: a backend that stays keeps
                            // its health history even if the list was reordered.
                            health.reconfigure(
                                settings(pool),
                                &specs(pool),
                                |b| {
                                    old_pool
                                        .backends
                                        .iter()
                                        .position(|o| o.addr == pool.backends[b].addr)
                                },
                                now,
                            );
                            health
                        }
                        None => PoolHealth::new(settings(pool), &specs(pool), now),
                    }
                })
                .collect();
            st.config = config.clone();
            st.config_generation += 1;
            st.probe_epoch += 1;
            st.published.clear();
            st.publish_if_changed(now, true);
        }
        // The snapshot naming the new listeners is published; now hand workers the sockets.
        for (name, sockets) in fresh.iter_mut() {
            for (worker, socket) in self.worker_sockets.iter().zip(sockets.drain(..)) {
                let _ = worker.send(ListenerSockets {
                    name: name.clone(),
                    socket,
                });
            }
        }
        let added: Vec<String> = config
            .listeners
            .iter()
            .filter(|l| fresh.iter().any(|(n, _)| *n == l.name))
            .map(|l| format!("{}={}", l.name, l.bind))
            .collect();
        let removed: Vec<&str> = old
            .listeners
            .iter()
            .filter(|o| {
                !config
                    .listeners
                    .iter()
                    .any(|l| l.name == o.name && l.bind == o.bind)
            })
            .map(|l| l.name.as_str())
            .collect();
        Ok(format!(
            "{} listeners, {} pools; added: [{}] removed: [{}]",
            config.listeners.len(),
            config.pools.len(),
            added.join(" "),
            removed.join(" "),
        ))
    }
}
