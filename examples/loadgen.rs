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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use gantry::webhook::signature::sign;
use tokio::sync::Mutex;

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
    let body = bytes::Bytes::from(std::fs::read(&args.payload)?);
    let event = args
        .payload
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('.').next())
        .unwrap_or("push")
        .to_string();
    let signature = sign(&args.secret, &body);
    // Every connection opened stays open for the next request: in open-loop mode up to
    // `in_flight` run at once, and closing the extras would measure TCP handshakes instead.
    let in_flight = match args.rate {
        Some(_) => args.concurrency.max(64),
        None => args.concurrency,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(in_flight)
        .build()?;
    let endpoint = format!("{}/webhooks/github", args.url.trim_end_matches('/'));
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
    let sender = Arc::new(Sender {
        client,
        endpoint,
        event,
        signature,
        body: body.clone(),
        stats: stats.clone(),
        run,
    });
    let send = move |n: u64, scheduled: Instant| {
        let sender = sender.clone();
        async move { sender.send(n, scheduled).await }
    };

    let started = Instant::now();
    match args.rate {
        None => {
            let next = Arc::new(AtomicU64::new(0));
            let workers: Vec<_> = (0..args.concurrency)
                .map(|_| {
                    let (next, send, total) = (next.clone(), send.clone(), args.total);
                    tokio::spawn(async move {
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= total {
                                break;
                            }
                            send(n, Instant::now()).await;
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
            let permits = Arc::new(tokio::sync::Semaphore::new(in_flight));
            let mut tasks = Vec::with_capacity(total as usize);
            for n in 0..total {
                let scheduled = started + Duration::from_nanos(n * 1_000_000_000 / rate);
                tokio::time::sleep_until(scheduled.into()).await;
                let permit = permits.clone().acquire_owned().await?;
                let fut = send(n, scheduled);
                tasks.push(tokio::spawn(async move {
                    fut.await;
                    drop(permit);
                }));
            }
            for task in tasks {
                task.await?;
            }
        }
    }
    let elapsed = started.elapsed();
    report(&stats, elapsed, &args, body.len()).await;
    Ok(())
}

/// Everything one request needs; shared by all of them.
struct Sender {
    client: reqwest::Client,
    endpoint: String,
    event: String,
    signature: String,
    body: bytes::Bytes,
    stats: Arc<Stats>,
    run: String,
}

impl Sender {
    /// Sends delivery `n`; its latency counts from `scheduled` (open loop: when it was due).
    async fn send(&self, n: u64, scheduled: Instant) {
        let response = self
            .client
            .post(&self.endpoint)
            .header("X-GitHub-Event", &self.event)
            .header("X-GitHub-Delivery", format!("load-{}-{n}", self.run))
            .header("X-Hub-Signature-256", &self.signature)
            .header("Content-Type", "application/json")
            .body(self.body.clone())
            .send()
            .await;
        let elapsed = scheduled.elapsed().as_micros() as u64;
        match response.map(|r| r.status().as_u16()) {
            Ok(202) => self.stats.accepted.fetch_add(1, Ordering::Relaxed),
            _ => self.stats.other.fetch_add(1, Ordering::Relaxed),
        };
        self.stats.latencies_us.lock().await.push(elapsed);
    }
}

async fn report(stats: &Stats, elapsed: Duration, args: &Args, size: usize) {
    let mut latencies = stats.latencies_us.lock().await.clone();
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
