//! The fuzzers' kept corpus (`fuzz/seeds/<target>/`, minimised with `cargo fuzz cmin`), replayed
//! through the same checks as the fuzz targets on every `cargo test`: an input that once
//! crashed a parser, or reached a rare branch, keeps being tried without nightly or libFuzzer.
//! See `fuzz/README.md` for how the corpus is grown.

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use caas_ingest::events::{IngestEvent, SchemaIds, Stamp};
use caas_ingest::signature::{rbm_signature, verify_rbm, verify_whatsapp, whatsapp_signature};
use caas_ingest::tenants::{Tenants, DEFAULT_TENANTS};
use caas_ingest::{rcs, whatsapp};

const IDS: SchemaIds = SchemaIds {
    message: 1,
    status: 2,
    presence: 3,
    conversation: 4,
};

fn stamp() -> Stamp {
    Stamp {
        recorded_at: 1_739_321_025_000,
        trace_parent: None,
    }
}

/// Every input kept for `target`; fails when there is none, so a lost corpus is noticed.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
            (path, bytes)
        })
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 10,
        "{} holds {} inputs; the kept corpus is missing",
        dir.display(),
        inputs.len()
    );
    inputs
}

/// Replays `target`'s kept inputs through `parse`; every event of an accepted input must encode,
/// and at least one input must be accepted (the corpus reaches the accepting paths too).
fn accepted_events_encode(target: &str, parse: impl Fn(&[u8]) -> Option<Vec<IngestEvent>>) {
    let mut accepted = 0;
    for (path, bytes) in corpus(target) {
        let Some(events) = parse(&bytes) else {
            continue;
        };
        accepted += 1;
        for event in &events {
            if let Err(error) = event.encode(&IDS) {
                panic!(
                    "{}: a mapped event does not encode: {error}",
                    path.display()
                );
            }
        }
    }
    assert!(accepted > 0, "no kept {target} input is accepted");
}

#[test]
fn every_kept_whatsapp_input_parses_or_is_refused_and_what_is_accepted_encodes() {
    let tenants = Tenants::parse(DEFAULT_TENANTS).expect("default tenants parse");
    accepted_events_encode("whatsapp", |body| {
        whatsapp::parse(body, &tenants, &stamp())
            .ok()
            .map(|batch| batch.events)
    });
}

#[test]
fn every_kept_rcs_input_parses_or_is_refused_and_what_is_accepted_encodes() {
    let tenants = Tenants::parse(DEFAULT_TENANTS).expect("default tenants parse");
    accepted_events_encode("rcs", |bytes| {
        let data = match rcs::parse_request(bytes) {
            Ok(rcs::Request::Push { data, .. }) => data,
            _ => bytes.to_vec(),
        };
        rcs::parse_data(&data, &tenants, &stamp())
            .ok()
            .map(|batch| batch.events)
    });
}

#[test]
fn every_kept_signature_input_verifies_only_its_own_signature() {
    let mut decoded = 0;
    for (path, bytes) in corpus("signature") {
        // libFuzzer's decoding of the target's `(key, header, body)` input.
        let Ok((key, header, body)) =
            <(&[u8], &[u8], &[u8])>::arbitrary_take_rest(Unstructured::new(&bytes))
        else {
            continue;
        };
        decoded += 1;
        let _ = verify_whatsapp(key, Some(header), body);
        let _ = verify_rbm(key, Some(header), body);
        let whatsapp = whatsapp_signature(key, body);
        assert!(
            verify_whatsapp(key, Some(whatsapp.as_bytes()), body).is_ok(),
            "{}: our own WhatsApp signature is refused",
            path.display()
        );
        let rbm = rbm_signature(key, body);
        assert!(
            verify_rbm(key, Some(rbm.as_bytes()), body).is_ok(),
            "{}: our own RBM signature is refused",
            path.display()
        );
    }
    // Inputs that libFuzzer could not split into (key, header, body) check nothing.
    assert!(decoded > 0, "no kept signature input decodes");
}
