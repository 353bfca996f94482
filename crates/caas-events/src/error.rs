//! Errors of encoding, decoding and registry calls.

/// A schema registry call that did not give an answer we can use.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The HTTP client could not be built (bad TLS set-up and the like).
    #[error("cannot build the schema registry client: {0}")]
    Client(#[source] reqwest::Error),
    /// No HTTP answer at all: connection refused, timeout, DNS.
    #[error("schema registry unreachable at {url}: {source}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What the HTTP client reported.
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an error status.
    #[error("schema registry answered {status} to {method} {url}: {message} (error code {error_code:?})")]
    Status {
        /// `GET` or `POST`.
        method: &'static str,
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The Confluent error code from the body (e.g. 40403 schema not found), if any.
        error_code: Option<i64>,
        /// The message from the body, or the body itself.
        message: String,
    },
    /// A 2xx answer whose body is not what the Confluent API promises.
    #[error("schema registry sent an unexpected answer to {url}: {reason}")]
    InvalidResponse {
        /// The URL called.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl RegistryError {
    /// Whether trying again later may succeed: no answer, 5xx, 408 or 429.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Client(_) => false,
            RegistryError::Unreachable { .. } => true,
            RegistryError::Status { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            RegistryError::InvalidResponse { .. } => true,
        }
    }

    /// Whether the registry said the subject, version or schema does not exist (404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::Status { status: 404, .. })
    }
}

/// An event that could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The value does not fit its schema: a bug in the Rust type or the schema.
    #[error("cannot encode {record} with its schema: {source}")]
    Avro {
        /// The Avro record name.
        record: &'static str,
        /// What the Avro serializer reported.
        #[source]
        source: apache_avro::Error,
    },
    /// The subject's schema id could not be obtained.
    #[error("cannot get the schema id of subject {subject}: {source}")]
    Registry {
        /// The subject, `<topic>-value`.
        subject: String,
        /// The registry's answer.
        #[source]
        source: RegistryError,
    },
}

impl EncodeError {
    /// Whether trying again later may succeed (the registry was unreachable or failing).
    /// An incompatible schema (409), an invalid one (422) or an encoding bug is not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            EncodeError::Avro { .. } => false,
            EncodeError::Registry { source, .. } => source.is_retryable(),
        }
    }
}

/// A record that could not be decoded.
///
/// [`DecodeError::is_poison`] tells the consumer what to do: poison records go to the DLQ (the
/// same bytes will never decode); the rest are transient and the record is retried.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes do not start with the Confluent header (magic byte 0 and a 4-byte schema id).
    #[error("record is not Confluent-framed Avro: {reason}")]
    NotFramed {
        /// What is wrong with the header.
        reason: String,
    },
    /// The registry does not know the schema id in the header.
    #[error("record names schema id {id}, which the schema registry does not know")]
    UnknownSchemaId {
        /// The id from the header.
        id: u32,
    },
    /// The writer schema the registry returned for the id does not parse as Avro.
    #[error("writer schema {id} from the registry is not a valid Avro schema: {source}")]
    WriterSchemaInvalid {
        /// The schema id.
        id: u32,
        /// What the parser reported.
        #[source]
        source: apache_avro::Error,
    },
    /// The body does not decode with the writer schema (truncated or corrupt).
    #[error("record body does not decode with writer schema {id} as {record}: {source}")]
    Malformed {
        /// The writer schema id.
        id: u32,
        /// The Avro record name expected.
        record: &'static str,
        /// What the decoder reported.
        #[source]
        source: apache_avro::Error,
    },
    /// The body decoded but bytes were left over, so the id and the body do not belong together.
    #[error(
        "record body has {trailing} bytes left after decoding with writer schema {id} as {record}"
    )]
    TrailingBytes {
        /// The writer schema id.
        id: u32,
        /// The Avro record name expected.
        record: &'static str,
        /// How many bytes were left.
        trailing: usize,
    },
    /// The writer schema cannot be read as this event type (not the same record, or not a
    /// compatible version of it).
    #[error("writer schema {id} cannot be read as {record}: {reason}")]
    SchemaMismatch {
        /// The writer schema id.
        id: u32,
        /// The Avro record name expected.
        record: &'static str,
        /// What schema resolution reported.
        reason: String,
    },
    /// The header does not match the writer schema given to a pure decoding function.
    #[error("record names schema id {found}, but writer schema {expected} was given")]
    WrongWriterSchema {
        /// The id in the header.
        found: u32,
        /// The id of the writer schema passed in.
        expected: u32,
    },
    /// The writer schema could not be fetched; retry later.
    #[error("cannot fetch writer schema {id}: {source}")]
    Registry {
        /// The schema id.
        id: u32,
        /// The registry's answer.
        #[source]
        source: RegistryError,
    },
}

impl DecodeError {
    /// True when the record itself is bad and will never decode: it belongs in the DLQ.
    /// False when the failure is on our side (the registry unreachable or failing): retry.
    pub fn is_poison(&self) -> bool {
        !matches!(
            self,
            DecodeError::Registry { .. } | DecodeError::WrongWriterSchema { .. }
        )
    }

    /// A short, stable label for metrics and DLQ headers (never contains record data).
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::NotFramed { .. } => "not_framed",
            DecodeError::UnknownSchemaId { .. } => "unknown_schema_id",
            DecodeError::WriterSchemaInvalid { .. } => "writer_schema_invalid",
            DecodeError::Malformed { .. } => "malformed",
            DecodeError::TrailingBytes { .. } => "trailing_bytes",
            DecodeError::SchemaMismatch { .. } => "schema_mismatch",
            DecodeError::WrongWriterSchema { .. } => "wrong_writer_schema",
            DecodeError::Registry { .. } => "registry",
        }
    }
}
