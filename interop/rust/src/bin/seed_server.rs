//! `seed_server [--tcp HOST:PORT] [--ws HOST:PORT/PATH] [--quic HOST:PORT]`: an echo server
//! on the original Rust msgtrans 1.0.10 (legacy event mode, as its README shows), for the
//! interoperability tests of the C++ msgtrans. See interop/README.md for the contract:
//! - one-way: echoed one-way (payload, biz_type and ext_header kept, message id 0);
//! - request: answered with the same payload, biz_type and ext_header;
//! - a one-way with biz_type 0xF0 (payload P) is not echoed: the server pushes a one-way
//!   0xF1 `push:P`, then sends a request 0xF2 `ask:P` and reports the answer A as a one-way
//!   0xF3 `answered:A` (or `failed:REASON`).
//! Prints `listening PROTO ADDR` per listener once it accepts connections; SIGINT/SIGTERM stop it.
//! Environment: SEED_CERT_OUT=FILE makes the QUIC listener use a self-signed certificate for
//! "localhost" generated here (as the crate does) and writes its PEM to FILE, so that a client
//! can trust it with a CA file; without it the crate generates its own, which nobody can see.
//! SEED_WELCOME=TEXT: push a one-way 0xF4 TEXT to every new connection at once.
use msgtrans::event::ServerEvent;
use msgtrans::packet::Packet;
use msgtrans::transport::{TransportServer, TransportServerBuilder};
use msgtrans::{QuicServerConfig, SessionId, TcpServerConfig, WebSocketServerConfig};
use msgtrans_interop::*;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Args {
    tcp: Option<String>,
    ws: Option<(String, String)>,
    quic: Option<String>,
}

fn usage() -> ! {
    eprintln!("usage: seed_server [--tcp HOST:PORT] [--ws HOST:PORT/PATH] [--quic HOST:PORT]");
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut a = Args { tcp: None, ws: None, quic: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--tcp" => a.tcp = Some(v),
            "--ws" => {
                let (hp, path) = match v.find('/') {
                    Some(i) => (v[..i].to_string(), v[i..].to_string()),
                    None => (v.clone(), "/".to_string()),
                };
                a.ws = Some((hp, path))
            }
            "--quic" => a.quic = Some(v),
            _ => usage(),
        }
    }
    if a.tcp.is_none() && a.ws.is_none() && a.quic.is_none() {
        usage();
    }
    a
}

fn addr_of(hp: &str) -> String {
    match resolve(hp) {
        Ok(a) => a.to_string(),
        Err(e) => {
            eprintln!("seed_server: {e}");
            std::process::exit(2);
        }
    }
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);

fn one_way(biz: u8, ext: &[u8], payload: Vec<u8>, id: u32) -> Packet {
    let mut p = Packet::one_way(id, payload);
    p.set_biz_type(biz);
    p.set_ext_header(ext.to_vec());
    p
}

/// The trigger: push, then ask, then report the answer (all on `session`).
async fn push_and_ask(server: TransportServer, session: SessionId, arg: Vec<u8>) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let push = one_way(BIZ_PUSH, &[], [b"push:".as_slice(), &arg].concat(), id);
    if let Err(e) = server.send_to_session(session, push).await {
        eprintln!("seed_server: push to {session}: {e:?}");
        return;
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut ask = Packet::request(id, [b"ask:".as_slice(), &arg].concat());
    ask.set_biz_type(BIZ_ASK);
    let report = match server.request_to_session(session, ask).await {
        Ok(answer) => [b"answered:".as_slice(), &answer.payload].concat(),
        Err(e) => format!("failed:{e:?}").into_bytes(),
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let _ = server.send_to_session(session, one_way(BIZ_ANSWERED, &[], report, id)).await;
}

async fn handle_events(server: TransportServer) {
    let mut events = server.subscribe_events();
    loop {
        let ev = match events.recv().await {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                eprintln!("seed_server: event stream lagged by {n}");
                continue;
            }
            Err(_) => return,
        };
        if let ServerEvent::ConnectionEstablished { session_id, .. } = &ev {
            if let Ok(text) = std::env::var("SEED_WELCOME") {
                let (s, id) = (server.clone(), *session_id);
                tokio::spawn(async move {
                    let _ = s.send_to_session(id, one_way(BIZ_WELCOME, &[], text.into_bytes(), 0)).await;
                });
            }
            continue;
        }
        let ServerEvent::MessageReceived { session_id, context } = ev else { continue };
        let s = server.clone();
        let ext = context.ext_header.clone().unwrap_or_default();
        if context.is_request() {
            // A raw response echoing biz_type and ext_header (the crate's respond() would
            // send biz_type 0 and no ext_header).
            let mut r = Packet::response(context.message_id, context.data.clone());
            r.set_biz_type(context.biz_type);
            r.set_ext_header(ext);
            tokio::spawn(async move {
                let _ = s.send_to_session(session_id, r).await;
            });
        } else if context.biz_type == BIZ_TRIGGER {
            tokio::spawn(push_and_ask(s, session_id, context.data.clone()));
        } else {
            let p = one_way(context.biz_type, &ext, context.data.clone(), 0);
            tokio::spawn(async move {
                let _ = s.send_to_session(session_id, p).await;
            });
        }
    }
}

/// The crate reports no readiness (and binds WebSocket lazily), so connect until it answers.
async fn wait_stream(addr: &str) -> bool {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// QUIC: complete one real handshake with the crate's own client (certificate not checked).
async fn wait_quic(addr: &str) -> bool {
    for _ in 0..100 {
        let Ok(cfg) = msgtrans::QuicClientConfig::insecure(addr) else { return false };
        let cfg = cfg.with_connect_timeout(Duration::from_millis(500));
        let retry = msgtrans::RetryConfig { max_retries: 0, ..Default::default() };
        if let Ok(mut c) = msgtrans::TransportClientBuilder::new()
            .with_protocol(cfg)
            .retry_strategy(retry)
            .build()
            .await
        {
            if c.connect().await.is_ok() {
                let _ = c.force_disconnect().await;
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn quic_config(addr: &str) -> QuicServerConfig {
    let mut q = QuicServerConfig::new(addr).unwrap_or_else(|e| {
        eprintln!("seed_server: --quic {addr}: {e:?}");
        std::process::exit(2);
    });
    if let Ok(out) = std::env::var("SEED_CERT_OUT") {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
        let (cert, key) = (c.cert.pem(), c.signing_key.serialize_pem());
        std::fs::write(&out, &cert).unwrap_or_else(|e| {
            eprintln!("seed_server: SEED_CERT_OUT {out}: {e}");
            std::process::exit(2);
        });
        q = q.with_cert_pem(cert).with_key_pem(key);
    }
    q
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let mut b = TransportServerBuilder::new();
    let tcp = args.tcp.as_deref().map(addr_of);
    let ws = args.ws.as_ref().map(|(hp, path)| (addr_of(hp), path.clone()));
    let quic = args.quic.as_deref().map(addr_of);
    if let Some(a) = &tcp {
        b = b.with_protocol(TcpServerConfig::new(a).expect("tcp config"));
    }
    if let Some((a, path)) = &ws {
        // with_path is a no-op in the crate: every path is accepted.
        b = b.with_protocol(WebSocketServerConfig::new(a).expect("ws config").with_path(path.clone()));
    }
    if let Some(a) = &quic {
        b = b.with_protocol(quic_config(a));
    }
    let server = Arc::new(b.build().await.expect("build"));
    tokio::spawn(handle_events((*server).clone()));
    let serving = {
        let s = (*server).clone();
        tokio::spawn(async move { s.serve().await })
    };
    let mut lines = Vec::new();
    if let Some(a) = &tcp {
        if !wait_stream(a).await {
            eprintln!("seed_server: tcp {a} never accepted");
            std::process::exit(1);
        }
        lines.push(format!("listening tcp {a}"));
    }
    if let Some((a, path)) = &ws {
        if !wait_stream(a).await {
            eprintln!("seed_server: ws {a} never accepted");
            std::process::exit(1);
        }
        lines.push(format!("listening ws {a}{path}"));
    }
    if let Some(a) = &quic {
        if !wait_quic(a).await {
            eprintln!("seed_server: quic {a} never completed a handshake");
            std::process::exit(1);
        }
        lines.push(format!("listening quic {a}"));
    }
    {
        let mut out = std::io::stdout().lock();
        for l in &lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = out.flush();
    }
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        r = serving => { eprintln!("seed_server: serve ended: {r:?}"); std::process::exit(1); }
    }
    server.stop().await;
    eprintln!("seed_server: stopped");
}
