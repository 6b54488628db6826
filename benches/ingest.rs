//! What ingest costs per delivery before it touches the store: verify the signature of a 25 KB
//! pull_request payload and pick out its envelope fields; and, for comparison, the full typed
//! parse the dispatcher does later, off the request path.
//!
//! Run: `cargo bench --bench ingest`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use secrecy::SecretString;

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

criterion_group!(benches, ingest);
criterion_main!(benches);
