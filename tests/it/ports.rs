//! A port that refuses connections for as long as a test needs it to.
//!
//! Binding port 0, noting the port and closing the socket leaves a window in which another
//! test running in parallel can be given the same port, and then the "dead" address answers.
//! A socket that is bound but not listening holds the port (nobody else is given it) while the
//! kernel refuses every connection to it; `listen` later turns it into a live listener on the
//! same address.

use std::net::SocketAddr;

pub struct RefusingPort {
    socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

impl RefusingPort {
    pub fn new() -> RefusingPort {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        RefusingPort { socket, addr }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Start accepting on the held port (needs a Tokio runtime).
    pub fn listen(self) -> tokio::net::TcpListener {
        self.socket.listen(1024).unwrap()
    }
}
