//! Webhook authentication, over the exact bytes received and in constant time.
//!
//! - WhatsApp: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`. Meta
//!   signs the bytes it sends (non-ASCII escaped as `\u00e4`), so the body is never
//!   re-serialised before verifying.
//! - RBM: `X-Goog-Signature: base64(HMAC-SHA512(client token, base64-decoded message.data))`.
//!
//! The comparison is `Mac::verify_slice`, which is constant-time; tokens are compared with
//! [`subtle`].

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The header carrying the WhatsApp signature (lower case, as HTTP/2 and axum name it).
pub const WHATSAPP_SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The header carrying the RBM signature.
pub const RBM_SIGNATURE_HEADER: &str = "x-goog-signature";

/// Why a webhook is not authentic. Answered 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature header is absent.
    #[error("the {header} header is missing; the webhook must be signed")]
    Missing {
        /// The header name.
        header: &'static str,
    },
    /// The header is present but cannot be a signature.
    #[error("the {header} header is malformed: {reason}")]
    Malformed {
        /// The header name.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A well-formed signature that does not match the body: wrong key, or a body changed
    /// (or re-serialised) after signing.
    #[error("the {header} signature does not match the body")]
    Mismatch {
        /// The header name.
        header: &'static str,
    },
}

impl SignatureError {
    /// Bounded metric label: `missing`, `malformed` or `mismatch`.
    pub fn label(&self) -> &'static str {
        match self {
            SignatureError::Missing { .. } => "missing",
            SignatureError::Malformed { .. } => "malformed",
            SignatureError::Mismatch { .. } => "mismatch",
        }
    }
}

/// Verifies a WhatsApp `X-Hub-Signature-256` header value against the raw body.
pub fn verify_whatsapp(
    app_secret: &[u8],
    header: Option<&[u8]>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let header_name = WHATSAPP_SIGNATURE_HEADER;
    let value = header.ok_or(SignatureError::Missing {
        header: header_name,
    })?;
    let value = trim_ascii(value);
    let hex_digest = value
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed {
            header: header_name,
            reason: "expected sha256=<64 hex digits>",
        })?;
    let expected = hex::decode(hex_digest).map_err(|_| SignatureError::Malformed {
        header: header_name,
        reason: "the digest is not hexadecimal",
    })?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed {
            header: header_name,
            reason: "the digest is not 32 bytes (64 hex digits)",
        });
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret).expect("HMAC accepts any key length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch {
            header: header_name,
        })
}

/// The `X-Hub-Signature-256` value Meta would send for `body` (tests, the simulator, curl
/// examples).
pub fn whatsapp_signature(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret).expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Verifies an RBM `X-Goog-Signature` header value against the decoded `message.data`.
pub fn verify_rbm(
    client_token: &[u8],
    header: Option<&[u8]>,
    data: &[u8],
) -> Result<(), SignatureError> {
    let header_name = RBM_SIGNATURE_HEADER;
    let value = header.ok_or(SignatureError::Missing {
        header: header_name,
    })?;
    let expected = decode_base64(trim_ascii(value)).ok_or(SignatureError::Malformed {
        header: header_name,
        reason: "not base64",
    })?;
    if expected.len() != 64 {
        return Err(SignatureError::Malformed {
            header: header_name,
            reason: "the digest is not 64 bytes (HMAC-SHA512)",
        });
    }
    let mut mac =
        Hmac::<Sha512>::new_from_slice(client_token).expect("HMAC accepts any key length");
    mac.update(data);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch {
            header: header_name,
        })
}

/// The `X-Goog-Signature` value Google would send for `data` (the decoded `message.data`).
pub fn rbm_signature(client_token: &[u8], data: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha512>::new_from_slice(client_token).expect("HMAC accepts any key length");
    mac.update(data);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Compares two secrets in time independent of where they differ.
pub fn tokens_equal(left: &[u8], right: &[u8]) -> bool {
    left.ct_eq(right).into()
}

/// Decodes standard base64 with or without padding (Pub/Sub pads; some clients don't).
pub(crate) fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .ok()
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_known_answer_from_the_provider_notes() {
        assert_eq!(
            whatsapp_signature(b"secret", b"test"),
            "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
        );
    }

    #[test]
    fn whatsapp_signatures_verify_over_the_exact_bytes() {
        let body = br#"{"name":"J\u00e4rvi"}"#;
        let header = whatsapp_signature(b"app-secret", body);
        assert_eq!(
            verify_whatsapp(b"app-secret", Some(header.as_bytes()), body),
            Ok(())
        );
        // The same JSON re-serialised (the escape decoded) no longer matches.
        let reserialised = r#"{"name":"Järvi"}"#.as_bytes();
        assert_eq!(
            verify_whatsapp(b"app-secret", Some(header.as_bytes()), reserialised)
                .unwrap_err()
                .label(),
            "mismatch"
        );
        let wrong_key = whatsapp_signature(b"other", body);
        assert!(verify_whatsapp(b"app-secret", Some(wrong_key.as_bytes()), body).is_err());
        let upper = header.to_uppercase().replace("SHA256=", "sha256=");
        assert_eq!(
            verify_whatsapp(b"app-secret", Some(upper.as_bytes()), body),
            Ok(())
        );
    }

    #[test]
    fn whatsapp_header_problems_are_told_apart() {
        let label =
            |header: Option<&[u8]>| verify_whatsapp(b"k", header, b"{}").unwrap_err().label();
        assert_eq!(label(None), "missing");
        assert_eq!(label(Some(b"md5=abc")), "malformed");
        assert_eq!(label(Some(b"sha256=zz")), "malformed");
        assert_eq!(label(Some(b"sha256=abcd")), "malformed");
        assert_eq!(label(Some(&[b'0'; 71])), "malformed");
        let zeros = format!("sha256={}", "0".repeat(64));
        assert_eq!(label(Some(zeros.as_bytes())), "mismatch");
    }

    #[test]
    fn rbm_signatures_verify_over_the_decoded_data() {
        let data = br#"{"senderPhoneNumber":"+15550001111","text":"hi"}"#;
        let header = rbm_signature(b"client-token", data);
        assert_eq!(
            verify_rbm(b"client-token", Some(header.as_bytes()), data),
            Ok(())
        );
        assert_eq!(
            verify_rbm(b"other-token", Some(header.as_bytes()), data)
                .unwrap_err()
                .label(),
            "mismatch"
        );
        let unpadded = header.trim_end_matches('=');
        assert_eq!(
            verify_rbm(b"client-token", Some(unpadded.as_bytes()), data),
            Ok(())
        );
        assert_eq!(
            verify_rbm(b"client-token", None, data).unwrap_err().label(),
            "missing"
        );
        assert_eq!(
            verify_rbm(b"client-token", Some(b"!!!"), data)
                .unwrap_err()
                .label(),
            "malformed"
        );
        assert_eq!(
            verify_rbm(b"client-token", Some(b"c2hvcnQ="), data)
                .unwrap_err()
                .label(),
            "malformed"
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(tokens_equal(b"abc", b"abc"));
        assert!(!tokens_equal(b"abc", b"abd"));
        assert!(!tokens_equal(b"abc", b"abcd"));
        assert!(!tokens_equal(b"", b"a"));
    }
}
