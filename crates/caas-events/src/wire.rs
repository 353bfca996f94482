//! The Confluent wire format without I/O: `0x00 | schema id (u32, big-endian) | Avro binary`.
//!
//! Encoding writes with the event type's own schema. Decoding reads with the writer schema the
//! header names: when it is the event type's own schema (same canonical form) the bytes are
//! deserialized straight into the Rust type; otherwise the record is decoded with the writer
//! schema and resolved to ours (Avro schema resolution), so records written with any compatible
//! version of the schema decode.

use apache_avro::types::Value;

use crate::binding::WriterSchema;
use crate::error::{DecodeError, EncodeError};
use crate::Event;

/// The first byte of every Confluent-framed record.
pub const MAGIC_BYTE: u8 = 0;

/// Length of the header: the magic byte and the 4-byte schema id.
pub const HEADER_LEN: usize = 5;

/// Encodes `event` as a framed record under `schema_id`.
pub fn encode<E: Event>(schema_id: u32, event: &E) -> Result<Vec<u8>, EncodeError> {
    let mut bytes = Vec::with_capacity(256);
    encode_into(schema_id, event, &mut bytes)?;
    Ok(bytes)
}

/// Appends `event` as a framed record under `schema_id` to `buffer` (reuse one buffer across
/// records to save allocations). On error, `buffer` may hold a partial record.
pub fn encode_into<E: Event>(
    schema_id: u32,
    event: &E,
    buffer: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    buffer.push(MAGIC_BYTE);
    buffer.extend_from_slice(&schema_id.to_be_bytes());
    E::binding()
        .writer()
        .write_ser(buffer, event)
        .map_err(|source| EncodeError::Avro {
            record: E::RECORD_NAME,
            source,
        })?;
    Ok(())
}

/// Encodes `event` as a bare Avro datum with its own schema (no header).
pub fn encode_body<E: Event>(event: &E) -> Result<Vec<u8>, EncodeError> {
    E::binding()
        .writer()
        .write_ser_to_vec(event)
        .map_err(|source| EncodeError::Avro {
            record: E::RECORD_NAME,
            source,
        })
}

/// Splits a framed record into its schema id and Avro body.
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    let Some(&first_byte) = bytes.first() else {
        return Err(DecodeError::NotFramed {
            reason: "the record value is empty".to_string(),
        });
    };
    if first_byte != MAGIC_BYTE {
        return Err(DecodeError::NotFramed {
            reason: format!("first byte is 0x{first_byte:02x}, expected the magic byte 0x00"),
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::NotFramed {
            reason: format!("{} bytes are too short for the 5-byte header", bytes.len()),
        });
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

/// The schema id in a framed record's header.
pub fn schema_id(bytes: &[u8]) -> Result<u32, DecodeError> {
    split(bytes).map(|(id, _)| id)
}

/// Decodes a framed record whose header names `writer`'s id.
pub fn decode<E: Event>(writer: &WriterSchema, bytes: &[u8]) -> Result<E, DecodeError> {
    let (id, body) = split(bytes)?;
    if id != writer.id() {
        return Err(DecodeError::WrongWriterSchema {
            found: id,
            expected: writer.id(),
        });
    }
    decode_body(writer, body)
}

/// Decodes a bare Avro body written with `writer`'s schema into `E`.
pub fn decode_body<E: Event>(writer: &WriterSchema, body: &[u8]) -> Result<E, DecodeError> {
    let binding = E::binding();
    let mut remaining = body;
    let event = if writer.fingerprint() == binding.fingerprint() {
        // Same layout: deserialize straight from the bytes, no intermediate `Value`.
        binding
            .reader()
            .read_deser::<E>(&mut remaining)
            .map_err(|source| DecodeError::Malformed {
                id: writer.id(),
                record: E::RECORD_NAME,
                source,
            })?
    } else {
        let value = decode_value(writer, &mut remaining, E::RECORD_NAME)?;
        resolve::<E>(writer, value)?
    };
    if !remaining.is_empty() {
        return Err(DecodeError::TrailingBytes {
            id: writer.id(),
            record: E::RECORD_NAME,
            trailing: remaining.len(),
        });
    }
    Ok(event)
}

/// Reads a generic value with the writer's schema (the slow path: names are resolved per call,
/// which only happens for records written with another version of the schema).
fn decode_value(
    writer: &WriterSchema,
    remaining: &mut &[u8],
    record: &'static str,
) -> Result<Value, DecodeError> {
    let malformed = |source| DecodeError::Malformed {
        id: writer.id(),
        record,
        source,
    };
    apache_avro::reader::datum::GenericDatumReader::builder(writer.schema())
        .human_readable(false)
        .build()
        .map_err(malformed)?
        .read_value(remaining)
        .map_err(malformed)
}

/// Resolves a value written with another schema to `E`'s schema, then into `E`.
fn resolve<E: Event>(writer: &WriterSchema, value: Value) -> Result<E, DecodeError> {
    let mismatch = |reason: String| DecodeError::SchemaMismatch {
        id: writer.id(),
        record: E::RECORD_NAME,
        reason,
    };
    let binding = E::binding();
    let resolved = crate::resolve::resolve(
        value,
        writer.schema(),
        &crate::resolve::Names::of(writer.schema()),
        binding.schema(),
        binding.names(),
    )
    .map_err(mismatch)?;
    apache_avro::from_value::<E>(&resolved).map_err(|error| mismatch(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rejects_empty_short_and_unframed_values() {
        for bytes in [&b""[..], &b"\x00\x00\x01"[..], &b"{\"json\":true}"[..]] {
            let error = split(bytes).expect_err("not framed");
            assert!(matches!(error, DecodeError::NotFramed { .. }), "{error}");
            assert!(error.is_poison());
        }
    }

    #[test]
    fn split_reads_big_endian_id() {
        let (id, body) = split(&[0, 0, 0, 1, 2, 9, 9]).expect("framed");
        assert_eq!(id, 258);
        assert_eq!(body, &[9, 9]);
    }
}
