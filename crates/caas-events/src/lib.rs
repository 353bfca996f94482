//! CAAS event contracts: the Avro schemas in `schemas/` bound to Rust types, the topic names,
//! and the Confluent wire format.
//!
//! Every record on a CAAS topic is one of the [`Event`] types below, written as
//! `0x00 | schema id (4 bytes, big-endian) | Avro binary` with its schema registered under the
//! subject `<topic>-value`. The schemas are self-contained (no references), so any standard
//! Confluent Avro deserializer reads our records, and records written by others against the
//! published schemas (or any compatible version) decode here.
//!
//! - [`topics`]: topic names (the catalogue in `topics/catalogue.yaml` lists the same names),
//!   [`topics::dlq`] and [`topics::value_subject`].
//! - [`model`]: the event types; [`keys`]: conversation, campaign and operator keys and
//!   deterministic event ids.
//! - [`Event`]: what every event type offers: its topic, its schema (embedded and parsed once),
//!   its Kafka key and its event id.
//! - [`wire`]: pure encoding and decoding with an explicit schema id and writer schema; no I/O,
//!   so unit tests, fuzzers and benches run without a registry.
//! - [`Codec`]: the same through a schema registry ([`RegistryClient`], the Confluent REST API,
//!   e.g. Apicurio's `/apis/ccompat/v7`). Subject ids and writer schemas are fetched once and
//!   cached; the registry is never called per record.
//!
//! Decoding takes one of two paths. A record written with our own schema (same canonical form)
//! is deserialized straight from the bytes. A record written with another version is decoded
//! with its writer schema and resolved to ours by the Avro rules (fields by name with the
//! reader's defaults, union branches and enum symbols by name, unknown symbols to the enum's
//! default), so both older and newer producers' records decode. The second path costs about ten
//! times the first.
//!
//! Decoding errors say whether the record is poison ([`DecodeError::is_poison`]: send it to the
//! DLQ) or the failure is transient (registry unreachable: retry). A length field can make the
//! decoder allocate at most [`MAX_ALLOCATION_BYTES`].
//!
//! Evolution under FULL_TRANSITIVE: add fields only with defaults; never add a branch to a
//! union (the `content` union included: unknown provider messages go to `Unsupported`); new enum
//! symbols only for enums that have a default symbol (`unknown` in the conversation, presence
//! and campaign event kinds); every other enum is closed.
//!
//! ```
//! use caas_events::model::{Channel, Content, InboundMessage, Text};
//! use caas_events::{keys, wire, Event, WriterSchema};
//!
//! let message = InboundMessage {
//!     event_id: keys::deterministic_event_id(&["whatsapp", "message", "wamid.1"]),
//!     tenant_id: "acme".into(),
//!     conversation_key: keys::conversation_key("acme", Channel::Whatsapp, "4915112345678"),
//!     channel: Channel::Whatsapp,
//!     occurred_at: 1_739_321_024_000,
//!     recorded_at: 1_739_321_024_120,
//!     source: "ingest".into(),
//!     trace_parent: None,
//!     provider_message_id: "wamid.1".into(),
//!     customer_id: "4915112345678".into(),
//!     customer_display_name: Some("Kim".into()),
//!     business_id: None,
//!     reply_to: None,
//!     content: Content::Text(Text { body: "hello".into(), preview_url: false }),
//! };
//! let bytes = wire::encode(42, &message)?;
//! let writer = WriterSchema::of::<InboundMessage>(42);
//! let decoded: InboundMessage = wire::decode(&writer, &bytes)?;
//! assert_eq!(decoded, message);
//! assert_eq!(InboundMessage::TOPIC, "inbound.messages.v1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod binding;
mod codec;
mod error;
mod event;
pub mod keys;
pub mod model;
mod registry;
mod resolve;
pub mod topics;
pub mod wire;

pub use binding::{SchemaBinding, WriterSchema, MAX_ALLOCATION_BYTES};
pub use codec::{Codec, CodecOptions};
pub use error::{DecodeError, EncodeError, RegistryError};
pub use event::{Contract, Event, CONTRACTS};
pub use registry::RegistryClient;

pub use apache_avro::Schema;
