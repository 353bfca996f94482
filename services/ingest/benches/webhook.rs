//! Cost of one webhook in the pure core: verify the signature over the raw bytes, parse and map
//! to events, encode every event in the Confluent wire format (fixed schema ids, no registry).
//! Kafka and Redis round trips are measured by the load tests, not here.
//!
//! `cargo bench -p caas-ingest --bench webhook --no-default-features` (the pure core is all it
//! needs, so the release build skips Kafka, Redis and HTTP).

use std::hint::black_box;

use base64::Engine as _;
use caas_ingest::events::{SchemaIds, Stamp};
use caas_ingest::signature::{rbm_signature, verify_rbm, verify_whatsapp, whatsapp_signature};
use caas_ingest::tenants::{Tenants, DEFAULT_TENANTS};
use caas_ingest::{rcs, whatsapp};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SECRET: &[u8] = b"bench-app-secret";
const SCHEMA_IDS: SchemaIds = SchemaIds {
    message: 1,
    status: 2,
    presence: 3,
    conversation: 4,
};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn stamp() -> Stamp {
    Stamp {
        recorded_at: 1_739_321_025_000,
        trace_parent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    }
}

/// Verify + parse + encode of one WhatsApp body; returns the encoded bytes' total length.
fn whatsapp_webhook(tenants: &Tenants, body: &[u8], header: &[u8]) -> usize {
    verify_whatsapp(SECRET, Some(header), body).expect("signed");
    let batch = whatsapp::parse(body, tenants, &stamp()).expect("parses");
    batch
        .events
        .iter()
        .map(|event| event.encode(&SCHEMA_IDS).expect("encodes").len())
        .sum()
}

fn bench_whatsapp(criterion: &mut Criterion) {
    let tenants = Tenants::parse(DEFAULT_TENANTS).unwrap();
    let mut group = criterion.benchmark_group("whatsapp_webhook");
    for (name, events) in [
        ("whatsapp_text", 1),
        ("whatsapp_contacts", 1),
        ("whatsapp_batch", 7),
    ] {
        let body = fixture(name);
        let header = whatsapp_signature(SECRET, &body);
        group.throughput(Throughput::Elements(events));
        group.bench_function(name, |bencher| {
            bencher.iter(|| whatsapp_webhook(&tenants, black_box(&body), header.as_bytes()))
        });
    }
    group.finish();
}

fn bench_rcs(criterion: &mut Criterion) {
    let tenants = Tenants::parse(DEFAULT_TENANTS).unwrap();
    let mut group = criterion.benchmark_group("rcs_webhook");
    group.throughput(Throughput::Elements(1));
    for name in ["rcs_text", "rcs_user_file", "rcs_event_read"] {
        let data = fixture(name);
        let envelope = serde_json::to_vec(&serde_json::json!({
            "message": {
                "data": base64::engine::general_purpose::STANDARD.encode(&data),
                "messageId": "1",
                "publishTime": "2025-02-12T00:43:44Z"
            },
            "subscription": "projects/p/subscriptions/s"
        }))
        .unwrap();
        let header = rbm_signature(SECRET, &data);
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                let rcs::Request::Push { data, .. } =
                    rcs::parse_request(black_box(&envelope)).expect("push")
                else {
                    unreachable!()
                };
                verify_rbm(SECRET, Some(header.as_bytes()), &data).expect("signed");
                let batch = rcs::parse_data(&data, &tenants, &stamp()).expect("parses");
                batch
                    .events
                    .iter()
                    .map(|event| event.encode(&SCHEMA_IDS).expect("encodes").len())
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_whatsapp, bench_rcs);
criterion_main!(benches);
