//! The admin endpoint's IO: accept on the admin listener (control thread only), read one
//! request head, route it with [`crate::admin`] and answer. Requests are few and small,
//! so each connection serves one request and is closed.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use super::reload::Reloader;
use super::State;
use crate::admin::{self, AdminRequest, Parsed, Routed};
use crate::lifecycle::Lifecycle;
use crate::metrics::{BackendStatus, Registry};

/// A client that does not send a whole request head within this long is dropped.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the admin handlers read or change.
pub(super) struct AdminContext {
    pub state: Rc<RefCell<State>>,
    pub registry: Arc<Registry>,
    pub lifecycle: Arc<Lifecycle>,
    pub reloader: Rc<Reloader>,
}

/// Accept admin connections forever.
pub(super) async fn serve(listener: TcpListener, ctx: Rc<AdminContext>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                monoio::spawn(handle(stream, ctx.clone()));
            }
            Err(e) => {
                crate::log::warn(format_args!("admin: accept failed: {e}"));
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(mut stream: TcpStream, ctx: Rc<AdminContext>) {
    let Ok(Some((routed, is_head))) =
        monoio::time::timeout(HEAD_TIMEOUT, read_request(&mut stream)).await
    else {
        return;
    };
    let mut response = respond(routed, &ctx);
    if is_head {
        // HEAD gets the same headers (Content-Length included) and no body.
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            response.truncate(end + 4);
        }
    }
    let _ = stream.write_all(response).await;
}

/// Read until a complete head is routed; `None` when the client went away.
async fn read_request(stream: &mut TcpStream) -> Option<(Routed, bool)> {
    let mut head = Vec::with_capacity(1024);
    loop {
        let buf = Vec::with_capacity(2048);
        let (res, buf) = stream.read(buf).await;
        match res {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if let Parsed::Complete {
            routed, is_head, ..
        } = admin::parse_and_route(&head)
        {
            return Some((routed, is_head));
        }
    }
}

/// Backend states for rendering, from the control thread's health state.
pub(super) fn backend_statuses(state: &State, now: Instant) -> Vec<BackendStatus> {
    let mut out = Vec::new();
    for (p, pool) in state.config.pools.iter().enumerate() {
        let view = state.health[p].view(now);
        for (b, backend) in pool.backends.iter().enumerate() {
            out.push(BackendStatus {
                pool: pool.name.clone(),
                addr: backend.addr,
                state: state.health[p].state(b).as_str(),
                weight: view.weights.get(b).copied().unwrap_or(0),
            });
        }
    }
    out
}

fn respond(routed: Routed, ctx: &AdminContext) -> Vec<u8> {
    const TEXT: &str = "text/plain; charset=utf-8";
    match routed {
        Routed::Request(request) => match request {
            AdminRequest::Metrics => {
                let statuses = backend_statuses(&ctx.state.borrow(), Instant::now());
                admin::response(
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    &ctx.registry.render_prometheus(&statuses),
                    &[],
                )
            }
            AdminRequest::Stats => {
                let statuses = backend_statuses(&ctx.state.borrow(), Instant::now());
                admin::response(
                    200,
                    "application/json",
                    &ctx.registry.render_stats_json(&statuses),
                    &[],
                )
            }
            AdminRequest::Live => admin::response(200, TEXT, "live\n", &[]),
            AdminRequest::Ready => {
                if ctx.lifecycle.is_draining() {
                    admin::response(503, TEXT, "draining\n", &[])
                } else {
                    admin::response(200, TEXT, "ready\n", &[])
                }
            }
            AdminRequest::Reload => {
                crate::sdnotify::notify("RELOADING=1");
                let outcome = ctx.reloader.reload(&ctx.state);
                crate::sdnotify::notify("READY=1");
                if outcome.ok {
                    super::spawn_probes(&ctx.state);
                    admin::response(200, TEXT, &format!("reloaded: {}\n", outcome.message), &[])
                } else {
                    admin::response(
                        400,
                        TEXT,
                        &format!("reload rejected:\n{}\n", outcome.message),
                        &[],
                    )
                }
            }
            AdminRequest::Drain { pool, backend } => drain_or_enable(ctx, &pool, backend, true),
            AdminRequest::Enable { pool, backend } => drain_or_enable(ctx, &pool, backend, false),
        },
        Routed::NotFound => admin::response(404, TEXT, "not found\n", &[]),
        Routed::MethodNotAllowed { allow } => {
            admin::response(405, TEXT, "method not allowed\n", &[("Allow", allow)])
        }
        Routed::BadRequest(why) => {
            admin::response(400, TEXT, &format!("bad request: {why}\n"), &[])
        }
    }
}

fn drain_or_enable(
    ctx: &AdminContext,
    pool: &str,
    backend: std::net::SocketAddr,
    drain: bool,
) -> Vec<u8> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if super::set_drain(&ctx.state, pool, backend, drain) {
        let verb = if drain { "draining" } else { "enabled" };
        admin::response(200, TEXT, &format!("{pool} {backend}: {verb}\n"), &[])
    } else {
        admin::response(
            404,
            TEXT,
            &format!("no backend {backend} in pool {pool:?}\n"),
            &[],
        )
    }
}
