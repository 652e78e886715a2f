//! Thin, safe wrappers over the Linux syscalls the runtime does not give us: `splice(2)`,
//! pipes sized with `F_SETPIPE_SZ`, `O_NONBLOCK`, `shutdown(2)` and `SO_REUSEPORT` listeners.
//!
//! Every `unsafe` block in the crate lives here, next to the syscall that needs it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// Turn a `-1` syscall return into the thread's `errno` as an `io::Error`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A kernel pipe used as the in-kernel buffer between two sockets for `splice(2)`.
///
/// Both ends are `O_NONBLOCK` so a full or empty pipe answers `EAGAIN` instead of
/// stalling the worker thread that every connection on this core shares.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    /// Create a non-blocking pipe and ask the kernel for `capacity` bytes of buffer.
    ///
    /// The kernel may round the size up (to a power-of-two number of pages) or refuse a
    /// size over `/proc/sys/fs/pipe-max-size` for an unprivileged user; in that case we
    /// keep whatever size the pipe has, because a smaller pipe still works, only slower.
    pub fn new(capacity: usize) -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid, writable array of two c_ints, as pipe2 requires.
        check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let wanted = libc::c_int::try_from(capacity).unwrap_or(libc::c_int::MAX);
        // SAFETY: F_SETPIPE_SZ / F_GETPIPE_SZ take an int argument on an open pipe fd.
        let granted = unsafe {
            match check(libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, wanted)) {
                Ok(size) => size,
                Err(_) => check(libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ))?,
            }
        };
        Ok(Pipe {
            read,
            write,
            capacity: usize::try_from(granted).unwrap_or(0),
        })
    }

    /// The pipe's buffer size in bytes as granted by the kernel.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The end bytes are spliced out of.
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The end bytes are spliced into.
    pub fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }
}

/// Move up to `len` bytes from `from` to `to` inside the kernel, never blocking.
///
/// One side must be a pipe. `Ok(0)` from a socket source means end of stream.
/// `SPLICE_F_NONBLOCK` only makes the *pipe* side non-blocking, which is why both
/// sockets must also be `O_NONBLOCK` (see [`set_nonblocking`]).
pub fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: null offsets are valid for pipes and sockets; the fds are open for the
    // duration of the call because the caller borrows the objects that own them.
    let ret = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Descriptor table slots reserved at startup (see [`prepare_descriptors`]): 512 KiB of
/// kernel memory, room for tens of thousands of connections before the table grows.
pub const FD_TABLE_RESERVE: u64 = 65_536;

/// What [`prepare_descriptors`] did, for the startup log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptors {
    /// The soft `RLIMIT_NOFILE` inherited from the parent.
    pub inherited: u64,
    /// The soft limit now (raised to the hard limit when it was lower).
    pub limit: u64,
    /// Slots the descriptor table has room for now (0 when reserving failed).
    pub reserved: u64,
}

/// Prepare the process's descriptors for many connections. Call before any thread is
/// started.
///
/// - Raise the soft `RLIMIT_NOFILE` to the hard limit: a proxy holds two descriptors per
///   proxied connection (three for plain HTTP on io_uring, whose client socket has a
///   second one for sends through the ring), and the usual soft default (1024) would
///   refuse clients long before the machine is busy. The hard limit is the
///   administrator's ceiling; the soft one is only a default for programs that do not
///   ask.
/// - Grow the descriptor table now to `min(limit, FD_TABLE_RESERVE)` slots. The kernel
///   grows it by doubling when a new descriptor does not fit, and in a process with
///   several threads each growth waits for an RCU grace period (`synchronize_rcu` in
///   `expand_files`): measured here, 20 ms during which the worker that called `accept`
///   sleeps and every connection on its core waits, at the first burst of 150 new
///   clients. Done before the threads exist, the growth is immediate.
pub fn prepare_descriptors() -> io::Result<Descriptors> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills in the struct we pass; no other pointers involved.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    let inherited = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass; raising the soft limit up to the
        // hard one needs no privilege.
        if check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) }).is_ok() {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    let limit = lim.rlim_cur;
    let want = limit.min(FD_TABLE_RESERVE);
    let reserved = match reserve_fd_table(want) {
        Ok(()) => want,
        Err(_) => 0,
    };
    Ok(Descriptors {
        inherited,
        limit,
        reserved,
    })
}

/// Make the descriptor table hold at least `slots` descriptors, by duplicating one to
/// the highest slot and closing it again (the table never shrinks).
fn reserve_fd_table(slots: u64) -> io::Result<()> {
    let Some(top) = slots
        .checked_sub(1)
        .and_then(|t| libc::c_int::try_from(t).ok())
    else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own and keep open for the call (`null`);
    // no pointers involved.
    let copy = check(unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, top) })?;
    // SAFETY: fcntl returned a new descriptor that nothing else owns.
    drop(unsafe { OwnedFd::from_raw_fd(copy) });
    Ok(())
}

/// Turn transparent huge pages off for this process (`PR_SET_THP_DISABLE`; children
/// inherit it).
///
/// With THP on, the first touch of any fresh 2 MiB region of the heap faults in a whole
/// huge page, which the kernel zeroes there and then: on the worker, in the middle of
/// serving. A burst of 150 new connections (bench small200) needs a few MiB of new
/// buffers; profiled, the worker spent 9 ms of the burst's first 16 in `clear_page_erms`,
/// and the row's p99.9 was 14-16 ms against 8-12 ms without THP. Ordinary pages fault in
/// only what is touched, a few microseconds each. A proxy's heap is small and churns, so
/// the TLB reach huge pages buy is worth less than that stall.
pub fn disable_transparent_huge_pages() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_THP_DISABLE takes integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) }).map(|_| ())
}

/// Put a descriptor in non-blocking mode.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor the caller keeps open; no pointers involved.
    unsafe {
        let flags = check(libc::fcntl(fd, libc::F_GETFL))?;
        if flags & libc::O_NONBLOCK == 0 {
            check(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
        }
    }
    Ok(())
}

/// Set or clear `O_NONBLOCK`, returning whether it was set before, so a caller that
/// needs non-blocking mode for a while can put the descriptor back as it found it.
pub fn replace_nonblocking(fd: RawFd, on: bool) -> io::Result<bool> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor the caller keeps open; no pointers involved.
    unsafe {
        let flags = check(libc::fcntl(fd, libc::F_GETFL))?;
        let was = flags & libc::O_NONBLOCK != 0;
        if was != on {
            let next = if on {
                flags | libc::O_NONBLOCK
            } else {
                flags & !libc::O_NONBLOCK
            };
            check(libc::fcntl(fd, libc::F_SETFL, next))?;
        }
        Ok(was)
    }
}

/// Half-close a socket: the peer reads end-of-stream, and we can still read its reply.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    // SAFETY: shutdown on a descriptor the caller keeps open; no pointers involved.
    check(unsafe { libc::shutdown(fd, libc::SHUT_WR) }).map(|_| ())
}

/// Stop a listening TCP socket at once: the kernel takes it off the port (out of its
/// `SO_REUSEPORT` group), resets the connections still in its accept queue, and an
/// accept waiting on it returns. Best effort: the socket is being dropped either way.
///
/// Why not only close the descriptor: an io_uring accept in flight holds a reference of
/// its own to the socket until the ring cancels it, and a worker that exits leaves that
/// cancel to the ring's teardown, which the kernel runs after the process is gone.
/// Measured: the port went on completing handshakes for 5–15 ms after ringway had exited,
/// into a queue nobody would accept from; a ringway started at once on the same port
/// shares it with that orphan, and the clients the kernel hands the orphan are reset.
/// `shutdown` acts on the socket, whatever still refers to it.
pub fn stop_listening(fd: RawFd) {
    // SAFETY: shutdown on a descriptor the caller keeps open; no pointers involved.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// Stop every listening socket of this process ([`stop_listening`]), found by walking
/// `/proc/self/fd`: for a stop that exits at once, without waiting for the workers that
/// own the listeners to close them. Sockets that are not listening are left alone.
pub fn stop_all_listening() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in entries.flatten() {
        let fd = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok());
        if let Some(fd) = fd.filter(|&fd| is_listening(fd)) {
            stop_listening(fd);
        }
    }
}

/// Whether `fd` is a listening socket (`SO_ACCEPTCONN`). False for anything else,
/// including a descriptor that is not a socket or was closed meanwhile.
pub fn is_listening(fd: RawFd) -> bool {
    matches!(int_sockopt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN), Ok(on) if on != 0)
}

/// An integer socket option's value (`getsockopt`).
fn int_sockopt(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes to `val` and the new length to `len`,
    // both valid for the whole call; an unsuitable descriptor only makes it fail.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut val as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    check(rc).map(|_| val)
}

/// Send a delayed ACK now and leave the kernel's "interactive" (pingpong) ACK mode:
/// `TCP_QUICKACK`. Called after reading part of a body.
///
/// Why: ringway reads a body at the pace of the side it writes to, so bytes wait in the
/// source socket. A connection that carries requests and responses is in pingpong mode,
/// where the kernel holds back the ACK for what we read, hoping to send it with our next
/// request, until its delayed-ACK timer fires (tens of milliseconds). A sender whose
/// congestion window is nearly spent (BBR keeps it near two bandwidth-delay products,
/// which is small on a fast path) then stops until that timer. Measured on loopback with
/// a 1 MiB response: p99 34 ms without this, 6 ms with it.
///
/// The option is not sticky (the kernel re-enters pingpong mode as traffic goes on),
/// so it is set after every body read. Best effort: on failure the socket is closing,
/// and the next read or write reports that.
pub fn push_ack(fd: RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a valid pointer to `on`,
    // which lives for the whole call; the descriptor is kept open by the caller.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Accept one queued connection on a non-blocking listener without waiting: `Ok(None)`
/// when the queue is empty. `nonblocking` gives the new socket `O_NONBLOCK`, to match
/// what the runtime's own accept returns (set on the epoll driver, not on io_uring).
pub fn try_accept(
    listener: RawFd,
    nonblocking: bool,
) -> io::Result<Option<(std::net::TcpStream, SocketAddr)>> {
    let flags = libc::SOCK_CLOEXEC | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: try_init passes accept4 a zeroed address buffer and its length, which
    // accept4 fills in; the caller keeps `listener` open for the call.
    let accepted = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            check(libc::accept4(listener, storage.cast(), len, flags))
        })
    };
    match accepted {
        Ok((fd, addr)) => {
            // SAFETY: accept4 returned a new descriptor that nothing else owns.
            let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
            match addr.as_socket() {
                Some(peer) => Ok(Some((stream, peer))),
                None => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "accepted a socket without an IP address",
                )),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a descriptor is in non-blocking mode (`O_NONBLOCK`).
pub fn is_nonblocking(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFL on a descriptor the caller keeps open; no pointers involved.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    Ok(flags & libc::O_NONBLOCK != 0)
}

/// Whether an idle connection is still fit for a new request: open, with nothing
/// unread. Peeks one byte without blocking: `EAGAIN` means open and quiet (fit); 0 means
/// the peer closed; any byte means the peer sent something unasked (a late response or
/// a server's goodbye), which would be read as the next response: not fit either.
pub fn idle_connection_fit(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: `byte` is a valid, writable 1-byte buffer for the duration of the call;
    // MSG_PEEK leaves the socket's data untouched and MSG_DONTWAIT makes the call return
    // at once even on a blocking socket.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == -1 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
}

/// Bind a TCP listener with `SO_REUSEPORT`, so that every worker binds its own socket on
/// the same address and the kernel spreads new connections across workers.
///
/// The socket is non-blocking because monoio's epoll driver requires it and its io_uring
/// driver accepts it.
pub fn reuseport_tcp_listener(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let socket = reuseport_socket(addr, Type::STREAM, Protocol::TCP)?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// A non-blocking socket bound to `addr` with `SO_REUSEADDR` and `SO_REUSEPORT` (and
/// v6-only for IPv6, so `[::]` and `0.0.0.0` listeners can coexist).
fn reuseport_socket(addr: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Bind a UDP socket with `SO_REUSEPORT`: each worker binds its own and the kernel
/// hashes every client address to one of them, so a flow stays on one worker.
pub fn reuseport_udp_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    Ok(reuseport_socket(addr, Type::DGRAM, Protocol::UDP)?.into())
}

/// A UDP socket connected to `backend`, for one flow: the kernel then drops datagrams
/// from anyone else and reports ICMP errors (port unreachable) on it.
pub fn connected_udp_socket(backend: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(backend),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_nonblocking(true)?;
    socket.connect(&backend.into())?;
    Ok(socket.into())
}

/// Whether the running kernel lets this process set up an io_uring instance.
pub fn io_uring_available() -> bool {
    monoio::utils::detect_uring()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn pipe_gets_requested_size_and_is_nonblocking() {
        let pipe = Pipe::new(256 * 1024).expect("pipe");
        assert!(pipe.capacity() >= 64 * 1024, "capacity {}", pipe.capacity());
        // An empty non-blocking pipe must answer EAGAIN, not block the test.
        let mut sink = std::fs::File::create("/dev/null").unwrap();
        let err = splice(pipe.read_fd(), sink.as_raw_fd(), 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        sink.flush().unwrap();
    }

    #[test]
    fn splice_moves_socket_bytes_through_pipe() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        let c_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(c_listener.local_addr().unwrap()).unwrap();
        let (mut d, _) = c_listener.accept().unwrap();
        a.write_all(b"hello splice").unwrap();
        a.shutdown(std::net::Shutdown::Write).unwrap();
        let pipe = Pipe::new(65536).unwrap();
        let mut moved = 0;
        loop {
            let n = splice(b.as_raw_fd(), pipe.write_fd(), 65536);
            match n {
                Ok(0) => break,
                Ok(n) => moved += splice(pipe.read_fd(), c.as_raw_fd(), n).unwrap(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        }
        shutdown_write(c.as_raw_fd()).unwrap();
        let mut got = String::new();
        d.read_to_string(&mut got).unwrap();
        assert_eq!(moved, 12);
        assert_eq!(got, "hello splice");
    }

    /// The state `push_ack` changes: `getsockopt(TCP_QUICKACK)` reads 1 when the
    /// socket is out of pingpong (interactive) mode.
    fn quickack(fd: RawFd) -> libc::c_int {
        int_sockopt(fd, libc::IPPROTO_TCP, libc::TCP_QUICKACK).expect("getsockopt")
    }

    #[test]
    fn stop_listening_takes_a_listener_off_its_port_while_its_descriptor_stays_open() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let pipe = Pipe::new(4096).unwrap();
        // (descriptor, listening): only the listener counts, not other sockets or pipes.
        for (fd, listening) in [
            (listener.as_raw_fd(), true),
            (client.as_raw_fd(), false),
            (pipe.read_fd(), false),
        ] {
            assert_eq!(is_listening(fd), listening, "fd {fd}");
        }
        stop_listening(listener.as_raw_fd());
        assert!(!is_listening(listener.as_raw_fd()));
        let refused = std::net::TcpStream::connect(addr).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn push_ack_leaves_pingpong_mode() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // Request/response exchanges: the client sends right after it received, which is
        // what puts a socket into pingpong mode (delayed ACKs ride on the next request).
        // One exchange is enough unless the client is descheduled for longer than the
        // delayed-ACK time between reading and sending; a few more make that moot.
        let mut buf = [0u8; 16];
        for _ in 0..20 {
            client.write_all(b"ping").unwrap();
            server.read_exact(&mut buf[..4]).unwrap();
            server.write_all(b"pong").unwrap();
            client.read_exact(&mut buf[..4]).unwrap();
            if quickack(client.as_raw_fd()) == 0 {
                break;
            }
        }
        assert_eq!(quickack(client.as_raw_fd()), 0, "no pingpong mode to leave");
        push_ack(client.as_raw_fd());
        assert_eq!(quickack(client.as_raw_fd()), 1);
    }

    #[test]
    fn try_accept_takes_every_queued_connection_then_reports_none() {
        let listener = reuseport_tcp_listener("127.0.0.1:0".parse().unwrap(), 64).unwrap();
        let addr = listener.local_addr().unwrap();
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut peers = Vec::new();
        // The handshakes completed in connect(), so all three are queued; the listener is
        // non-blocking, so an empty queue answers at once.
        for nonblocking in [true, false, true] {
            let (stream, peer) = try_accept(listener.as_raw_fd(), nonblocking)
                .unwrap()
                .expect("a queued connection");
            assert_eq!(is_nonblocking(stream.as_raw_fd()).unwrap(), nonblocking);
            peers.push(peer);
        }
        assert!(try_accept(listener.as_raw_fd(), false).unwrap().is_none());
        let mut expected: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        peers.sort();
        expected.sort();
        assert_eq!(peers, expected);
    }

    #[test]
    fn prepare_descriptors_reaches_the_hard_limit_and_reserves_the_table() {
        let first = prepare_descriptors().expect("first");
        assert!(first.limit >= first.inherited);
        // Now at the hard limit: a second call has nothing to raise.
        let second = prepare_descriptors().expect("second");
        assert_eq!(second.inherited, first.limit);
        assert_eq!(second.limit, first.limit);
        let want = second.limit.min(FD_TABLE_RESERVE);
        assert_eq!(second.reserved, want);
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let slots: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        assert!(slots >= want, "table has {slots} slots, wanted {want}");
    }

    #[test]
    fn transparent_huge_pages_can_be_turned_off() {
        disable_transparent_huge_pages().expect("prctl");
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        // Reported since kernel 5.0, older than the io_uring the workers need.
        let line = status
            .lines()
            .find(|l| l.starts_with("THP_enabled:"))
            .expect("THP_enabled in /proc/self/status");
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
}
