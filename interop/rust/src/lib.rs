//! Shared between `seed_client` and `seed_server`: the trigger protocol a client uses to
//! ask a server for a push and a server-to-client request (see interop/README.md), and
//! URL parsing.

/// A one-way message with this biz_type asks the server to push and to ask.
pub const BIZ_TRIGGER: u8 = 0xF0;
/// The server's push: one-way, payload `push:` + the trigger's payload.
pub const BIZ_PUSH: u8 = 0xF1;
/// The server's request to the client: payload `ask:` + the trigger's payload.
pub const BIZ_ASK: u8 = 0xF2;
/// The server's report of the client's answer: one-way, payload `answered:` + the answer
/// (or `failed:` + a reason).
pub const BIZ_ANSWERED: u8 = 0xF3;

/// seed_server's push on connect (SEED_WELCOME=TEXT).
pub const BIZ_WELCOME: u8 = 0xF4;

/// Deterministic test payload of `n` bytes; `seed` makes payloads of one size differ.
pub fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Resolves `host:port` to one socket address (the crate takes IP literals only).
pub fn resolve(hostport: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    hostport
        .to_socket_addrs()
        .map_err(|e| format!("{hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hostport}: no address"))
}
