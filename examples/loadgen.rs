//! A load generator for Gantry's webhook ingest: sends signed deliveries with distinct ids to a
//! running server and reports deliveries/s and latency percentiles.
//!
//! Closed loop (as fast as N connections go):
//!   cargo run --release --example loadgen -- --url http://127.0.0.1:8080 --secret S \
//!       --concurrency 8 --total 200000 --payload fixtures/webhooks/push.3.json
//! Open loop at a fixed rate (latency measured from each request's scheduled start, so a
//! stall shows up in the percentiles instead of hiding):
//!   cargo run --release --example loadgen -- --url … --secret S --rate 1000 --seconds 20

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use gantry::webhook::signature::sign;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// The same allocator as the server: what the load generator spends, the server does not get.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
struct Args {
    /// Gantry's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The webhook secret Gantry was started with.
    #[arg(long, env = "GANTRY_WEBHOOK_SECRET")]
    secret: String,
    /// Connections sending at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Deliveries to send in closed-loop mode.
    #[arg(long, default_value_t = 100_000)]
    total: u64,
    /// Open-loop mode: deliveries per second (with --seconds).
    #[arg(long)]
    rate: Option<u64>,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The payload to send (its event is taken from the file name: push.json → push).
    #[arg(long, default_value = "fixtures/webhooks/push.3.json")]
    payload: PathBuf,
}

struct Stats {
    latencies_us: Mutex<Vec<u64>>,
    accepted: AtomicU64,
    other: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let body = Bytes::from(std::fs::read(&args.payload)?);
    let event = args
        .payload
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('.').next())
        .unwrap_or("push")
        .to_string();
    let signature = sign(&args.secret, &body);
    let url = url::Url::parse(&args.url)?;
    let host = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port_or_known_default().unwrap_or(80)
    );
    // Open loop: up to `in_flight` requests at once, each on a connection of its own.
    let in_flight = match args.rate {
        Some(_) => args.concurrency.max(64),
        None => args.concurrency,
    };
    let connections = Connections::open(&host, in_flight).await?;
    let stats = Arc::new(Stats {
        latencies_us: Mutex::new(Vec::new()),
        accepted: AtomicU64::new(0),
        other: AtomicU64::new(0),
    });
    // Distinct delivery ids across runs against the same server.
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let path = format!("{}/webhooks/github", url.path().trim_end_matches('/'));
    let sender = Arc::new(Sender::new(
        connections,
        &path,
        &event,
        &signature,
        body.clone(),
        stats.clone(),
        run,
    ));

    let started = Instant::now();
    match args.rate {
        None => {
            let next = Arc::new(AtomicU64::new(0));
            let workers: Vec<_> = (0..args.concurrency)
                .map(|_| {
                    let (next, sender, total) = (next.clone(), sender.clone(), args.total);
                    tokio::spawn(async move {
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= total {
                                break;
                            }
                            sender.send(n, Instant::now()).await;
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.await?;
            }
        }
        Some(rate) => {
            let total = rate * args.seconds;
            let mut tasks = Vec::with_capacity(total as usize);
            for n in 0..total {
                let scheduled = started + Duration::from_nanos(n * 1_000_000_000 / rate);
                tokio::time::sleep_until(scheduled.into()).await;
                let sender = sender.clone();
                tasks.push(tokio::spawn(async move { sender.send(n, scheduled).await }));
            }
            for task in tasks {
                task.await?;
            }
        }
    }
    let elapsed = started.elapsed();
    report(&stats, elapsed, &args, body.len());
    Ok(())
}

/// Keep-alive HTTP/1.1 connections, each carrying one request at a time. Requests are written
/// as ready-made bytes and responses read with `httparse`, as wrk does: the load generator
/// shares the machine with the server, and every microsecond it spends is one the server does
/// not get (a hyper client spent about twice as much per request).
struct Connections {
    host: String,
    free: Mutex<Vec<Connection>>,
    /// One permit per free connection.
    permits: Semaphore,
}

impl Connections {
    async fn open(host: &str, count: usize) -> anyhow::Result<Self> {
        let mut free = Vec::with_capacity(count);
        for _ in 0..count {
            free.push(Connection::open(host).await?);
        }
        Ok(Self {
            host: host.to_string(),
            free: Mutex::new(free),
            permits: Semaphore::new(count),
        })
    }

    /// Sends `request` on a free connection (waiting for one); a connection that failed is
    /// replaced by a new one.
    async fn send(&self, request: &[u8]) -> Option<u16> {
        let permit = self.permits.acquire().await.ok()?;
        let mut connection = self.free.lock().unwrap().pop()?;
        let answered = connection.exchange(request).await.ok();
        if answered.is_none() {
            match Connection::open(&self.host).await {
                Ok(fresh) => connection = fresh,
                Err(_) => {
                    permit.forget(); // this connection is gone; the run goes on with fewer
                    return None;
                }
            }
        }
        self.free.lock().unwrap().push(connection);
        drop(permit);
        answered
    }
}

struct Connection {
    stream: TcpStream,
    /// What has been read of the current response.
    received: Vec<u8>,
}

impl Connection {
    async fn open(host: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            received: Vec::with_capacity(4096),
        })
    }

    /// Writes one request and reads its whole response; returns the status.
    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<u16> {
        self.stream.write_all(request).await?;
        self.received.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = response.parse(&self.received)? {
                let status = response.code.unwrap_or(0);
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })
                    .ok_or_else(|| anyhow::anyhow!("a response without Content-Length"))?;
                while self.received.len() < head + length {
                    self.read_more().await?;
                }
                return Ok(status);
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        if self.stream.read_buf(&mut self.received).await? == 0 {
            anyhow::bail!("the server closed the connection");
        }
        Ok(())
    }
}

/// Everything one request needs; shared by all of them.
struct Sender {
    connections: Connections,
    /// The request line and the headers up to the delivery id's value.
    head: String,
    body: Bytes,
    stats: Arc<Stats>,
    run: String,
}

impl Sender {
    fn new(
        connections: Connections,
        path: &str,
        event: &str,
        signature: &str,
        body: Bytes,
        stats: Arc<Stats>,
        run: String,
    ) -> Self {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nX-GitHub-Event: {event}\r\n\
             X-Hub-Signature-256: {signature}\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\nX-GitHub-Delivery: ",
            host = connections.host,
            length = body.len(),
        );
        Self {
            connections,
            head,
            body,
            stats,
            run,
        }
    }

    /// Sends delivery `n`; its latency counts from `scheduled` (open loop: when it was due).
    async fn send(&self, n: u64, scheduled: Instant) {
        let mut request = Vec::with_capacity(self.head.len() + 64 + self.body.len());
        request.extend_from_slice(self.head.as_bytes());
        request.extend_from_slice(format!("load-{}-{n}\r\n\r\n", self.run).as_bytes());
        request.extend_from_slice(&self.body);
        let status = self.connections.send(&request).await;
        let elapsed = scheduled.elapsed().as_micros() as u64;
        match status {
            Some(202) => self.stats.accepted.fetch_add(1, Ordering::Relaxed),
            _ => self.stats.other.fetch_add(1, Ordering::Relaxed),
        };
        self.stats.latencies_us.lock().unwrap().push(elapsed);
    }
}

fn report(stats: &Stats, elapsed: Duration, args: &Args, size: usize) {
    let mut latencies = stats.latencies_us.lock().unwrap().clone();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    let accepted = stats.accepted.load(Ordering::Relaxed);
    println!(
        "mode={} payload={}B concurrency={} sent={} accepted(202)={} other={}",
        args.rate
            .map_or("closed-loop".to_string(), |r| format!("open-loop {r}/s")),
        size,
        args.concurrency,
        latencies.len(),
        accepted,
        stats.other.load(Ordering::Relaxed)
    );
    println!(
        "throughput={:.0} deliveries/s  p50={:.2}ms  p90={:.2}ms  p99={:.2}ms  max={:.2}ms",
        accepted as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
}
