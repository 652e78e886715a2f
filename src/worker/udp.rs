//! The L4 UDP path: one flow per client address, each with its own connected upstream
//! socket to the backend chosen for it, relaying datagrams unchanged both ways.
//!
//! Each worker binds its own `SO_REUSEPORT` socket, and the kernel hashes a client's
//! address to one of them, so a flow lives on one worker and its table needs no sharing.
//! Flows end after `timeouts.idle` without a datagram either way; the table holds at most
//! `limits.max_flows` per worker, and a new flow beyond that evicts the least recently
//! active one.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use monoio::net::udp::UdpSocket;

use super::core::{ActiveGuard, Core, CoreView, GaugeGuard, Tried};
use crate::flow_table::FlowTable;
use crate::health::Passive;
use crate::lb::hash_ip;

/// Largest UDP payload (IPv4 and IPv6 without jumbograms).
const MAX_DATAGRAM: usize = 65_535;

/// One client's flow: its upstream socket and when it last carried a datagram.
struct Flow {
    upstream: UdpSocket,
    last_active: Cell<Instant>,
    /// Set when the flow was evicted or failed: its task stops at its next wake-up.
    closed: Cell<bool>,
}

type Flows = Rc<RefCell<FlowTable<Rc<Flow>, SocketAddr>>>;

/// Relay datagrams for one UDP listener forever.
pub async fn serve(core: Core, name: Rc<str>, socket: UdpSocket) {
    let socket = Rc::new(socket);
    let capacity = {
        let view = core.view();
        let index = view.snapshot.listener_index(&name);
        index.map_or(1, |i| view.snapshot.config.listeners[i].max_flows)
    };
    let flows: Flows = Rc::new(RefCell::new(FlowTable::new(capacity)));
    let mut buf = Vec::with_capacity(MAX_DATAGRAM);
    loop {
        buf.clear();
        let (received, b) = socket.recv_from(buf).await;
        buf = b;
        super::busy_poll::note_activity();
        // Errors on an unconnected socket are per-datagram (e.g. a truncated read);
        // they say nothing about the listener, so the loop carries on.
        let Ok((_, client)) = received else { continue };
        let view = core.view();
        let Some(listener) = view.snapshot.listener_index(&name) else {
            return; // removed by a reload
        };
        let now = Instant::now();
        let stats = &view.listener_stats[listener];
        if let Some(limiter) = &view.rate_limiters[listener] {
            if !limiter.borrow_mut().allow(client.ip(), now) {
                stats.rate_limited_total.fetch_add(1, Ordering::Relaxed);
                continue; // over the client's rate: the datagram is dropped
            }
        }
        let existing = flows.borrow_mut().touch(&client, now).cloned();
        let flow = match existing.filter(|f| !f.closed.get()) {
            Some(flow) => flow,
            None => match open_flow(&core, &view, listener, client, &socket, &flows, now) {
                Some(flow) => flow,
                None => {
                    stats.refused_total.fetch_add(1, Ordering::Relaxed);
                    continue; // no usable backend: the datagram is dropped
                }
            },
        };
        flow.last_active.set(now);
        let len = buf.len();
        let (sent, b) = flow.upstream.send(buf).await;
        buf = b;
        match sent {
            Ok(_) => {
                stats.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
            }
            // A refused send reports an ICMP port-unreachable from an earlier datagram:
            // the flow's task sees it too and closes the flow.
            Err(_) => flow.closed.set(true),
        }
    }
}

/// Pick a backend for a new flow from `client`, open its socket and start the task that
/// relays replies. `None` when no backend is usable.
fn open_flow(
    core: &Core,
    view: &Rc<CoreView>,
    listener: usize,
    client: SocketAddr,
    socket: &Rc<UdpSocket>,
    flows: &Flows,
    now: Instant,
) -> Option<Rc<Flow>> {
    let config = &view.snapshot.config.listeners[listener];
    let pool = config.protocol.pool()?;
    let runtime = &view.pools[pool];
    let key = hash_ip(client.ip());
    let mut tried = Tried::default();
    loop {
        let backend = view.pick(pool, key, &mut tried)?;
        let addr = view.snapshot.config.pools[pool].backends[backend].addr;
        let upstream = crate::sys::connected_udp_socket(addr).and_then(UdpSocket::from_std);
        let upstream = match upstream {
            Ok(s) => s,
            Err(e) => {
                crate::log::debug(format_args!("udp upstream {addr}: {e}"));
                core.report(view, pool, backend, Passive::ConnectFailure);
                continue;
            }
        };
        let flow = Rc::new(Flow {
            upstream,
            last_active: Cell::new(now),
            closed: Cell::new(false),
        });
        if let Some((_, evicted)) = flows.borrow_mut().insert(client, flow.clone(), now) {
            evicted.closed.set(true);
        }
        runtime.stats[backend]
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        view.listener_stats[listener]
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        let task = relay_replies(
            core.clone(),
            view.clone(),
            listener,
            (pool, backend),
            client,
            flow.clone(),
            socket.clone(),
            flows.clone(),
            config.timeouts.idle,
        );
        monoio::spawn(task);
        return Some(flow);
    }
}

/// Relay the backend's datagrams back to the client until the flow goes idle, is evicted,
/// or the backend turns out to be unreachable.
#[allow(clippy::too_many_arguments)] // one flow's whole context; a struct would only rename it
async fn relay_replies(
    core: Core,
    view: Rc<CoreView>,
    listener: usize,
    (pool, backend): (usize, usize),
    client: SocketAddr,
    flow: Rc<Flow>,
    socket: Rc<UdpSocket>,
    flows: Flows,
    idle: Duration,
) {
    let stats = &view.listener_stats[listener];
    let _flow_gauge = GaugeGuard::new(&stats.active_connections);
    let _backend_gauge = GaugeGuard::new(&view.pools[pool].stats[backend].active_connections);
    let _load = ActiveGuard::new(view.clone(), pool, backend);
    let mut buf = Vec::with_capacity(MAX_DATAGRAM);
    loop {
        if flow.closed.get() {
            break;
        }
        let deadline = flow.last_active.get() + idle;
        buf.clear();
        let received = monoio::time::timeout_at(
            monoio::time::Instant::from_std(deadline),
            flow.upstream.recv(buf),
        )
        .await;
        match received {
            Ok((Ok(n), b)) => {
                buf = b;
                flow.last_active.set(Instant::now());
                stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                let (sent, b) = socket.send_to(buf, client).await;
                buf = b;
                if let Err(e) = sent {
                    crate::log::debug(format_args!("udp reply to {client}: {e}"));
                }
            }
            Ok((Err(e), b)) => {
                buf = b;
                if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    // ICMP port unreachable: nothing listens on the backend.
                    core.report(&view, pool, backend, Passive::ConnectFailure);
                    break;
                }
            }
            Err(_) => {
                // The timed-out receive took its buffer with it; this happens once per
                // idle period at most, so a fresh one is cheap.
                buf = Vec::with_capacity(MAX_DATAGRAM);
                if flow.last_active.get().elapsed() >= idle {
                    break;
                }
            }
        }
    }
    flow.closed.set(true);
    let mut table = flows.borrow_mut();
    // Remove the entry only if it is still this flow (not a newer one for the client).
    if table.get(&client).is_some_and(|f| Rc::ptr_eq(f, &flow)) {
        table.remove(&client);
    }
}
