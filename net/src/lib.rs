//! Networking for weft coroutines, mirroring `std::net`: blocking-style sockets that park the
//! calling coroutine instead of its thread.
//!
//! This crate is the home of `TcpListener`, `TcpStream`, `UdpSocket` and the Unix socket
//! types; they build on the per-worker reactor of `weft-runtime`.

#![warn(missing_docs)]
