//! What ingest costs per delivery before it touches the store: verify the signature of a 25 KB
//! pull_request payload and pick out its envelope fields; and, for comparison, the full typed
//! parse the dispatcher does later, off the request path. Then one commit of a batch of 7 KB
//! push deliveries on SQLite: through the sqlx pool, and through the ingest writer that
//! webhook ingest uses.
//!
//! Run: `cargo bench --bench ingest`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use secrecy::SecretString;

use gantry::store::{NewDelivery, Store};
use gantry::webhook::envelope;
use gantry::webhook::signature::{WebhookSecrets, sign};

const SECRET: &str = "bench-secret";

fn payload() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/webhooks/pull_request.opened.json"
    );
    std::fs::read(path).expect("fixture")
}

fn ingest(c: &mut Criterion) {
    let body = payload();
    let header = sign(SECRET, &body);
    let secrets = WebhookSecrets::new(&[SecretString::from(SECRET)]);
    let mut group = c.benchmark_group("ingest_25kb_pull_request");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("verify_signature", |b| {
        b.iter(|| secrets.verify(Some(header.as_bytes()), &body).unwrap())
    });
    group.bench_function("verify_and_read_envelope", |b| {
        b.iter(|| {
            secrets.verify(Some(header.as_bytes()), &body).unwrap();
            envelope::read(&body).unwrap()
        })
    });
    group.bench_function("typed_parse_in_dispatcher", |b| {
        b.iter(|| gantry::events::parse("pull_request", &body).unwrap())
    });
    group.finish();
}

/// One commit of `n` deliveries with fresh ids.
fn batch(n: usize, next_id: &mut u64, payload: &[u8]) -> Vec<NewDelivery> {
    (0..n)
        .map(|_| {
            *next_id += 1;
            NewDelivery {
                // Spread like GitHub's GUIDs, not in order: the unique index sees random keys.
                delivery_id: format!("{:016x}", next_id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                event: "push".into(),
                action: None,
                installation_id: Some(1),
                repository: Some("octo-org/infra".into()),
                payload: bytes::Bytes::copy_from_slice(payload),
                received_at_ms: 0,
            }
        })
        .collect()
}

fn store_commit(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("gantry.db").display());
    let store = runtime
        .block_on(Store::open(&SecretString::from(url)))
        .unwrap();
    let mut writer = store.ingest_writer().unwrap().expect("a SQLite file");
    let payload = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/webhooks/push.3.json"
    ))
    .unwrap();
    let mut next_id = 0;
    let mut group = c.benchmark_group("sqlite_commit_7kb_push");
    for n in [1, 8] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("sqlx_pool_batch_{n}"), |b| {
            b.iter_batched(
                || batch(n, &mut next_id, &payload),
                |deliveries| {
                    runtime
                        .block_on(store.insert_deliveries(&deliveries))
                        .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("ingest_writer_batch_{n}"), |b| {
            b.iter_batched(
                || batch(n, &mut next_id, &payload),
                |deliveries| writer.insert(&deliveries).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, ingest, store_commit);
criterion_main!(benches);
