//! Cost of one flow step in the pure core: `decide(flows, session, event)` for the demo tenant's
//! flows (`flows/demo.yaml`), from a customer's first message (menu), through a menu choice and a
//! validated answer (ask → branch → send), to the fallback; and parsing the flow file.
//! Kafka and Redis round trips are measured by the load tests, not here.
//!
//! `cargo bench -p caas-chatbot --bench flow`

use std::hint::black_box;

use caas_chatbot::domain::engine::{decide, Event, Message};
use caas_chatbot::domain::flow::{parse, TenantFlows};
use caas_chatbot::domain::session::Session;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const DEMO: &str = include_str!("../flows/demo.yaml");
const CUSTOMER: &str = "4915112345678";
const AT: i64 = 1_800_000_000_000;

fn text(event_id: &'static str, at: i64, body: &'static str) -> Event<'static> {
    Event::Message(Message {
        event_id,
        at,
        text: Some(body),
        customer_name: Some("Kim"),
        ..Message::default()
    })
}

fn choice(
    event_id: &'static str,
    at: i64,
    id: &'static str,
    title: &'static str,
) -> Event<'static> {
    Event::Message(Message {
        event_id,
        at,
        choice: Some((id, title)),
        customer_name: Some("Kim"),
        ..Message::default()
    })
}

/// The session after `events`, each applied in turn from no session.
fn session_after(flows: &TenantFlows, events: &[Event<'_>]) -> Option<Session> {
    let mut session: Option<Session> = None;
    for event in events {
        let decision = decide(flows, session.as_ref(), event, CUSTOMER);
        if decision.changed {
            session = Some(decision.session);
        }
    }
    session
}

fn bench_steps(criterion: &mut Criterion) {
    let flows = parse("flows/demo.yaml", DEMO).expect("the demo flows parse");
    let first = text("e1", AT, "hi");
    let track = choice("e2", AT + 1_000, "track", "Track my order");
    let order = text("e3", AT + 2_000, "912345");
    let nonsense = text("e4", AT + 3_000, "what is the weather on mars");

    let at_menu = session_after(&flows, std::slice::from_ref(&first));
    let at_ask = session_after(&flows, &[first, track]);
    let after_answer = session_after(&flows, &[first, track, order]);

    let mut group = criterion.benchmark_group("flow_step");
    group.throughput(Throughput::Elements(1));
    group.bench_function("first_message_menu", |bencher| {
        bencher.iter(|| decide(black_box(&flows), None, black_box(&first), CUSTOMER))
    });
    group.bench_function("menu_choice_to_ask", |bencher| {
        bencher.iter(|| {
            decide(
                black_box(&flows),
                at_menu.as_ref(),
                black_box(&track),
                CUSTOMER,
            )
        })
    });
    group.bench_function("validated_answer_branch_send", |bencher| {
        bencher.iter(|| {
            decide(
                black_box(&flows),
                at_ask.as_ref(),
                black_box(&order),
                CUSTOMER,
            )
        })
    });
    group.bench_function("fallback", |bencher| {
        bencher.iter(|| {
            decide(
                black_box(&flows),
                after_answer.as_ref(),
                black_box(&nonsense),
                CUSTOMER,
            )
        })
    });
    group.finish();
}

fn bench_parse(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("flow_file");
    group.throughput(Throughput::Bytes(DEMO.len() as u64));
    group.bench_function("parse_demo_yaml", |bencher| {
        bencher.iter(|| parse("flows/demo.yaml", black_box(DEMO)).expect("parses"))
    });
    group.finish();
}

criterion_group!(benches, bench_steps, bench_parse);
criterion_main!(benches);
