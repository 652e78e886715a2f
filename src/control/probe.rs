//! Active health probes: a TCP connect, or an HTTP GET whose status is compared with the
//! expected one (over TLS, verified like requests, for a pool that speaks TLS). Each probe
//! is bounded by the check's timeout as a whole.

use std::net::SocketAddr;

use monoio::net::TcpStream;

use crate::config::{CheckKind, HealthCheck, PoolTls};
use crate::worker::stream::{Stream, TlsStream};

/// Largest response head a probe reads before calling the backend unhealthy.
const MAX_PROBE_HEAD: usize = 8192;

/// Probe `addr` once; true when healthy.
pub async fn run(check: &HealthCheck, addr: SocketAddr, tls: Option<&PoolTls>) -> bool {
    // A probe that runs out of time is a failure.
    monoio::time::timeout(check.timeout, probe(check, addr, tls))
        .await
        .unwrap_or(false)
}

async fn probe(check: &HealthCheck, addr: SocketAddr, tls: Option<&PoolTls>) -> bool {
    let Ok(tcp) = TcpStream::connect_addr(addr).await else {
        return false;
    };
    let CheckKind::Http { path, expect, host } = &check.check else {
        return true; // a TCP check only needs the connect
    };
    let mut stream = match tls {
        None => Stream::completion(tcp),
        Some(tls) => {
            let name = tls.server_name.clone().unwrap_or_else(|| addr.ip().into());
            let config = tls.client.clone();
            match TlsStream::connect(tcp, config, name, check.timeout).await {
                Ok(s) => Stream::Tls(Box::new(s)),
                Err(e) => {
                    crate::log::debug(format_args!(
                        "health check {addr}: TLS handshake failed: {e}"
                    ));
                    return false;
                }
            }
        }
    };
    let host = host.clone().unwrap_or_else(|| addr.to_string());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringway-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let len = request.len();
    let (res, _) = stream.write_range(request.into_bytes(), 0..len).await;
    if res.is_err() {
        return false;
    }
    read_status(&mut stream).await == Some(*expect)
}

/// Read until the response head is complete and return its status code.
async fn read_status(stream: &mut Stream) -> Option<u16> {
    let mut head: Vec<u8> = Vec::with_capacity(1024);
    loop {
        head.reserve(1024);
        let (res, buf) = stream.read_spare(head).await;
        head = buf;
        let n = res.ok()?;
        if n == 0 {
            return None;
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&head) {
            Ok(httparse::Status::Complete(_)) => return response.code,
            Ok(httparse::Status::Partial) if head.len() < MAX_PROBE_HEAD => continue,
            _ => return None,
        }
    }
}
