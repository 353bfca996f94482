//! Any bytes as a WhatsApp webhook body: the parser returns a batch or an error, never panics,
//! and what it accepts maps to events that encode.
#![no_main]

use caas_ingest::events::{SchemaIds, Stamp};
use caas_ingest::tenants::{Tenants, DEFAULT_TENANTS};
use caas_ingest::whatsapp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let tenants = Tenants::parse(DEFAULT_TENANTS).expect("default tenants parse");
    let stamp = Stamp {
        recorded_at: 1_739_321_025_000,
        trace_parent: None,
    };
    if let Ok(batch) = whatsapp::parse(body, &tenants, &stamp) {
        let ids = SchemaIds {
            message: 1,
            status: 2,
            presence: 3,
            conversation: 4,
        };
        for event in &batch.events {
            event.encode(&ids).expect("every mapped event encodes");
        }
    }
});
