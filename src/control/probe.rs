//! Active health probes: a TCP connect, or an HTTP GET whose status is compared with the
//! expected one. Each probe is bounded by the check's timeout as a whole.

use std::net::SocketAddr;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::config::{CheckKind, HealthCheck};

/// Largest response head a probe reads before calling the backend unhealthy.
const MAX_PROBE_HEAD: usize = 8192;

/// Probe `addr` once; true when healthy.
pub async fn run(check: &HealthCheck, addr: SocketAddr) -> bool {
    // A probe that runs out of time is a failure.
    monoio::time::timeout(check.timeout, probe(&check.check, addr))
        .await
        .unwrap_or(false)
}

async fn probe(kind: &CheckKind, addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_addr(addr).await else {
        return false;
    };
    let CheckKind::Http { path, expect, host } = kind else {
        return true; // a TCP check only needs the connect
    };
    let host = host.clone().unwrap_or_else(|| addr.to_string());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringway-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let (res, _) = stream.write_all(request.into_bytes()).await;
    if res.is_err() {
        return false;
    }
    read_status(&mut stream).await == Some(*expect)
}

/// Read until the response head is complete and return its status code.
async fn read_status(stream: &mut TcpStream) -> Option<u16> {
    let mut head: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let buf = Vec::with_capacity(1024);
        let (res, buf) = stream.read(buf).await;
        let n = res.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&head) {
            Ok(httparse::Status::Complete(_)) => return response.code,
            Ok(httparse::Status::Partial) if head.len() < MAX_PROBE_HEAD => continue,
            _ => return None,
        }
    }
}
