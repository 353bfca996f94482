//! Any header value against any body: verification answers, never panics, and a signature we
//! compute ourselves always verifies.
#![no_main]

use caas_ingest::signature::{rbm_signature, verify_rbm, verify_whatsapp, whatsapp_signature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &[u8], &[u8])| {
    let (key, header, body) = input;
    let _ = verify_whatsapp(key, Some(header), body);
    let _ = verify_rbm(key, Some(header), body);
    let whatsapp = whatsapp_signature(key, body);
    assert!(verify_whatsapp(key, Some(whatsapp.as_bytes()), body).is_ok());
    let rbm = rbm_signature(key, body);
    assert!(verify_rbm(key, Some(rbm.as_bytes()), body).is_ok());
});
