//! Any bytes as an RBM push body and as decoded `message.data`: never a panic, and what is
//! accepted encodes.
#![no_main]

use caas_ingest::events::{SchemaIds, Stamp};
use caas_ingest::rcs;
use caas_ingest::tenants::{Tenants, DEFAULT_TENANTS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let tenants = Tenants::parse(DEFAULT_TENANTS).expect("default tenants parse");
    let stamp = Stamp {
        recorded_at: 1_739_321_025_000,
        trace_parent: None,
    };
    let ids = SchemaIds {
        message: 1,
        status: 2,
        presence: 3,
        conversation: 4,
    };
    let data = match rcs::parse_request(bytes) {
        Ok(rcs::Request::Push { data, .. }) => data,
        _ => bytes.to_vec(),
    };
    if let Ok(batch) = rcs::parse_data(&data, &tenants, &stamp) {
        for event in &batch.events {
            event.encode(&ids).expect("every mapped event encodes");
        }
    }
});
