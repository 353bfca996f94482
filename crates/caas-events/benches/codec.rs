//! Encode and decode costs of the wire format, without a registry: an inbound text message and
//! an outbound command, through the direct path (writer schema = ours) and the resolving path
//! (a record from a newer schema version).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use caas_events::model::{InboundMessage, OutboundCommand};
use caas_events::{wire, WriterSchema};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SCHEMA_ID: u32 = 1;

fn inbound_text(criterion: &mut Criterion) {
    let message = common::inbound_text();
    let bytes = wire::encode(SCHEMA_ID, &message).expect("encodes");
    let writer = WriterSchema::of::<InboundMessage>(SCHEMA_ID);
    let (newer_writer, newer_bytes) = common::from_newer_writer(&message);

    let mut group = criterion.benchmark_group("inbound_text");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |bencher| {
        bencher.iter(|| wire::encode(SCHEMA_ID, black_box(&message)).expect("encodes"))
    });
    let mut buffer = Vec::with_capacity(512);
    group.bench_function("encode_into_reused_buffer", |bencher| {
        bencher.iter(|| {
            buffer.clear();
            wire::encode_into(SCHEMA_ID, black_box(&message), &mut buffer).expect("encodes");
        })
    });
    group.bench_function("decode", |bencher| {
        bencher
            .iter(|| wire::decode::<InboundMessage>(&writer, black_box(&bytes)).expect("decodes"))
    });
    group.bench_function("decode_resolving_newer_writer", |bencher| {
        bencher.iter(|| {
            wire::decode::<InboundMessage>(&newer_writer, black_box(&newer_bytes)).expect("decodes")
        })
    });
    group.finish();
}

fn outbound_command(criterion: &mut Criterion) {
    let command = common::outbound_text();
    let bytes = wire::encode(SCHEMA_ID, &command).expect("encodes");
    let writer = WriterSchema::of::<OutboundCommand>(SCHEMA_ID);
    let (newer_writer, newer_bytes) = common::from_newer_writer(&command);

    let mut group = criterion.benchmark_group("outbound_command");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |bencher| {
        bencher.iter(|| wire::encode(SCHEMA_ID, black_box(&command)).expect("encodes"))
    });
    group.bench_function("decode", |bencher| {
        bencher
            .iter(|| wire::decode::<OutboundCommand>(&writer, black_box(&bytes)).expect("decodes"))
    });
    group.bench_function("decode_resolving_newer_writer", |bencher| {
        bencher.iter(|| {
            wire::decode::<OutboundCommand>(&newer_writer, black_box(&newer_bytes))
                .expect("decodes")
        })
    });
    group.finish();
}

criterion_group!(benches, inbound_text, outbound_command);
criterion_main!(benches);
