//! `seed_bench URL [-c CONNS] [-k INFLIGHT] [-s SIZE] [-d SECONDS] [--insecure]`: request/response
//! throughput of the original Rust msgtrans 1.0.10 client against an echo server (used by
//! bench/rust_interop.sh). C connections, each with K requests in flight (closed loop),
//! S-byte payloads; after a 1 s warm-up, counts the responses of D seconds. Prints
//! `seed_bench URL: N messages/s (C x K, S B, D s, E errors)`.
use bytes::Bytes;
use msgtrans::transport::TransportOptions;
use msgtrans::{QuicClientConfig, TcpClientConfig, TransportClient, TransportClientBuilder, WebSocketClientConfig};
use msgtrans_interop::resolve;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn connect(url: &str, insecure: bool) -> Result<TransportClient, String> {
    let (scheme, rest) = url.split_once("://").ok_or("URL without scheme")?;
    let b = TransportClientBuilder::new();
    let b = match scheme {
        "tcp" => b.with_protocol(TcpClientConfig::new(&resolve(rest)?.to_string()).map_err(|e| format!("{e:?}"))?),
        "ws" => b.with_protocol(WebSocketClientConfig::new(url).map_err(|e| format!("{e:?}"))?),
        "quic" => {
            let mut q = QuicClientConfig::new(&resolve(rest)?.to_string()).map_err(|e| format!("{e:?}"))?;
            if insecure {
                q = q.danger_skip_verification();
            }
            b.with_protocol(q)
        }
        _ => return Err(format!("unsupported scheme {scheme}")),
    };
    let mut c = b.build().await.map_err(|e| format!("{e:?}"))?;
    c.connect().await.map_err(|e| format!("{e:?}"))?;
    Ok(c)
}

#[tokio::main]
async fn main() {
    let mut a = std::env::args().skip(1);
    let url = a.next().expect("usage: seed_bench URL [-c N] [-k N] [-s N] [-d S] [--insecure]");
    let (mut conns, mut inflight, mut size, mut secs, mut insecure) = (4usize, 8usize, 64usize, 5f64, false);
    while let Some(f) = a.next() {
        let mut num = || a.next().expect("value").parse::<f64>().expect("number");
        match f.as_str() {
            "-c" => conns = num() as usize,
            "-k" => inflight = num() as usize,
            "-s" => size = num() as usize,
            "-d" => secs = num(),
            "--insecure" => insecure = true,
            _ => panic!("unknown flag {f}"),
        }
    }
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (done, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let client = Arc::new(connect(&url, insecure).await.unwrap_or_else(|e| panic!("connect {url}: {e}")));
        for _ in 0..inflight {
            let (c, counting, stop, done, errors) = (client.clone(), counting.clone(), stop.clone(), done.clone(), errors.clone());
            let payload = Bytes::from(vec![b'x'; size]);
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let opts = TransportOptions::new().with_timeout(Duration::from_secs(10));
                    match c.request_with_options(payload.clone(), opts).await {
                        Ok(r) if r.len() == payload.len() => {
                            if counting.load(Ordering::Relaxed) {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // warm-up (measurement window, not a wait for an event)
    counting.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    counting.store(false, Ordering::SeqCst);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    let n = done.load(Ordering::SeqCst) as f64 / elapsed;
    println!(
        "seed_bench {url}: {n:.0} messages/s ({conns} x {inflight}, {size} B, {elapsed:.1} s, {} errors)",
        errors.load(Ordering::SeqCst)
    );
}
