//! `seed_client URL [--insecure | --ca FILE]`: runs a fixed script against a msgtrans server
//! with the original Rust msgtrans 1.0.10 client. URL is tcp://HOST:PORT, ws://HOST:PORT/PATH
//! or quic://HOST:PORT (QUIC verifies the server's certificate for "localhost" against
//! the Mozilla roots, or FILE with --ca; --insecure skips the check). Prints `ok NAME` or
//! `FAIL NAME: reason` per step, then `N passed, M failed`; exit status 0 only if none
//! failed. The server must echo and answer the 0xF0 trigger (interop/README.md).
use bytes::Bytes;
use msgtrans::event::ClientEvent;
use msgtrans::transport::TransportOptions;
use msgtrans::event::TransportContext;
use msgtrans::{QuicClientConfig, TcpClientConfig, TransportClient, TransportClientBuilder, WebSocketClientConfig};
use msgtrans_interop::*;
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);
/// The original's TCP receive cap (MAX_PAYLOAD_SIZE in src/adapters/tcp.rs).
const CAP: usize = 1024 * 1024;

struct Target {
    url: String,
    insecure: bool,
    ca: Option<String>,
}

struct Peer {
    client: TransportClient,
    inbox: mpsc::UnboundedReceiver<TransportContext>,
}

async fn connect(t: &Target) -> Result<Peer, String> {
    let (scheme, rest) = t.url.split_once("://").ok_or("URL without scheme")?;
    let b = TransportClientBuilder::new();
    let b = match scheme {
        "tcp" => b.with_protocol(TcpClientConfig::new(&resolve(rest)?.to_string()).map_err(|e| format!("{e:?}"))?),
        "ws" => b.with_protocol(WebSocketClientConfig::new(&t.url).map_err(|e| format!("{e:?}"))?),
        "quic" => {
            let mut q = QuicClientConfig::new(&resolve(rest)?.to_string()).map_err(|e| format!("{e:?}"))?;
            if t.insecure {
                q = q.danger_skip_verification();
            } else if let Some(f) = &t.ca {
                q = q.with_ca_cert_pem(std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}"))?);
            }
            b.with_protocol(q)
        }
        _ => return Err(format!("unsupported scheme {scheme}")),
    };
    let retry = msgtrans::RetryConfig { max_retries: 0, ..Default::default() };
    let mut client = b.retry_strategy(retry).build().await.map_err(|e| format!("{e:?}"))?;
    let mut events = client.subscribe_events();
    let (tx, inbox) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            if let ClientEvent::MessageReceived(ctx) = ev {
                if tx.send(ctx).is_err() {
                    return;
                }
            }
        }
    });
    client.connect().await.map_err(|e| format!("{e:?}"))?;
    Ok(Peer { client, inbox })
}

fn show(b: &[u8]) -> String {
    if b.len() > 40 {
        format!("{} bytes", b.len())
    } else {
        format!("{:?}", String::from_utf8_lossy(b))
    }
}

/// Waits for the next inbound message and checks it byte for byte.
async fn expect(p: &mut Peer, request: bool, biz: u8, ext: &[u8], data: &[u8]) -> Result<TransportContext, String> {
    let ctx = tokio::time::timeout(WAIT, p.inbox.recv())
        .await
        .map_err(|_| format!("nothing arrived in {WAIT:?}"))?
        .ok_or("event stream ended")?;
    let got_ext = ctx.ext_header.clone().unwrap_or_default();
    if ctx.is_request() != request || ctx.biz_type != biz || got_ext != ext || ctx.data != data {
        return Err(format!(
            "got {} biz {} ext {} data {}, want {} biz {biz} ext {} data {}",
            if ctx.is_request() { "request" } else { "one-way" },
            ctx.biz_type,
            show(&got_ext),
            show(&ctx.data),
            if request { "request" } else { "one-way" },
            show(ext),
            show(data)
        ));
    }
    Ok(ctx)
}

async fn echo(p: &Peer, payload: Vec<u8>, timeout: Duration) -> Result<(), String> {
    let opts = TransportOptions::new().with_timeout(timeout);
    let got = p.client.request_with_options(Bytes::from(payload.clone()), opts).await.map_err(|e| format!("{e:?}"))?;
    if got.as_ref() != payload.as_slice() {
        return Err(format!("response differs: {} bytes back for {} sent", got.len(), payload.len()));
    }
    Ok(())
}

async fn one_way(p: &mut Peer) -> Result<(), String> {
    let msg = b"one-way from the Rust original".to_vec();
    p.client.send(&msg).await.map_err(|e| format!("{e:?}"))?;
    expect(p, false, 0, b"", &msg).await.map(|_| ())
}

async fn inflight(p: &Peer) -> Result<(), String> {
    let all = (0..1000u32).map(|i| echo(p, pattern(64, 1000 + i), WAIT));
    let results = futures::future::join_all(all).await;
    let bad: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    match bad.first() {
        None => Ok(()),
        Some(e) => Err(format!("{} of 1000 failed, first: {e}", bad.len())),
    }
}

async fn push_and_ask(p: &mut Peer) -> (Result<(), String>, Result<(), String>) {
    let opts = TransportOptions::new().with_biz_type(BIZ_TRIGGER);
    if let Err(e) = p.client.send_with_options(Bytes::from_static(b"go"), opts).await {
        let e = format!("trigger: {e:?}");
        return (Err(e.clone()), Err(e));
    }
    let push = expect(p, false, BIZ_PUSH, b"", b"push:go").await.map(|_| ());
    let ask = async {
        let ctx = expect(p, true, BIZ_ASK, b"", b"ask:go").await?;
        ctx.respond_checked(b"reply:ask:go".to_vec()).await.map_err(|e| format!("respond: {e:?}"))?;
        expect(p, false, BIZ_ANSWERED, b"", b"answered:reply:ask:go").await.map(|_| ())
    }
    .await;
    (push, ask)
}

async fn biz_ext(p: &mut Peer) -> Result<(), String> {
    let ext = Bytes::from_static(b"route:abc");
    let opts = TransportOptions::new().with_biz_type(7).with_ext_header(ext.clone());
    p.client.send_with_options(Bytes::from_static(b"data"), opts).await.map_err(|e| format!("{e:?}"))?;
    expect(p, false, 7, &ext, b"data").await?;
    let opts = TransportOptions::new().with_biz_type(9).with_ext_header(ext).with_timeout(WAIT);
    let got = p.client.request_with_options(Bytes::from_static(b"req"), opts).await.map_err(|e| format!("{e:?}"))?;
    if got.as_ref() != b"req" {
        return Err(format!("request with biz/ext: response {}", show(&got)));
    }
    Ok(())
}

async fn close(p: Peer) -> Result<(), String> {
    p.client.disconnect().await.map_err(|e| format!("{e:?}"))?;
    if p.client.is_connected().await {
        return Err("still connected after disconnect".into());
    }
    Ok(())
}

/// Over the cap: on its own connection, because on TCP the original's receiver rejects the
/// echoed header and the connection is unusable afterwards.
async fn over_cap(t: &Target) -> Result<String, String> {
    let p = connect(t).await?;
    let r = echo(&p, pattern(CAP + 1, 3), Duration::from_secs(5)).await;
    let _ = p.client.force_disconnect().await;
    if t.url.starts_with("tcp://") {
        return match r {
            Ok(()) => Err("the reply over 1 MiB arrived: the original's TCP cap is gone?".into()),
            Err(e) => Ok(format!("known defect of the original: its TCP receiver drops a packet over 1 MiB ({e})")),
        };
    }
    r.map(|_| String::new())
}

#[tokio::main]
async fn main() {
    let mut it = std::env::args().skip(1);
    let usage = || -> ! {
        eprintln!("usage: seed_client URL [--insecure | --ca FILE]");
        std::process::exit(2)
    };
    let url = it.next().unwrap_or_else(|| usage());
    let mut t = Target { url, insecure: false, ca: None };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--insecure" => t.insecure = true,
            "--ca" => t.ca = Some(it.next().unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    if t.insecure && t.ca.is_some() {
        usage();
    }
    let (mut passed, mut failed) = (0, 0);
    let mut report = |name: &str, r: Result<String, String>| match r {
        Ok(note) if note.is_empty() => { passed += 1; println!("ok {name}") }
        Ok(note) => { passed += 1; println!("ok {name} - {note}") }
        Err(e) => { failed += 1; println!("FAIL {name}: {e}") }
    };
    let ok = |r: Result<(), String>| r.map(|_| String::new());
    match connect(&t).await {
        Err(e) => report("connect", Err(e)),
        Ok(mut p) => {
            report("connect", Ok(String::new()));
            report("one_way", ok(one_way(&mut p).await));
            report("request_64KiB", ok(echo(&p, pattern(64 * 1024, 1), WAIT).await));
            report("request_1MiB", ok(echo(&p, pattern(CAP, 2), WAIT).await));
            report("inflight_1000", ok(inflight(&p).await));
            let (push, ask) = push_and_ask(&mut p).await;
            report("server_push", ok(push));
            report("server_request", ok(ask));
            report("biz_ext_roundtrip", ok(biz_ext(&mut p).await));
            report("clean_close", ok(close(p).await));
            report("request_1MiB_plus_1", over_cap(&t).await);
        }
    }
    println!("{passed} passed, {failed} failed");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
