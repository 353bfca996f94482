//! Parsed schemas with everything per-call work would otherwise rebuild.
//!
//! Resolving a schema's names is the expensive part of an Avro datum reader or writer, so each
//! event type builds its [`SchemaBinding`] once; writer schemas from the registry are parsed once
//! per schema id into a [`WriterSchema`] with the fingerprint that picks the fast decoding path.

use std::fmt;

use apache_avro::rabin::Rabin;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;

use crate::resolve::Names;

/// The most one length field in a record may ask the Avro decoder to allocate. Records on our
/// topics are at most a few MiB (WhatsApp webhooks are at most 3 MB), so a larger length is a
/// corrupt or hostile record; without this bound it could make the decoder allocate 512 MiB.
/// `apache-avro` keeps this process-wide and takes the first value set.
pub const MAX_ALLOCATION_BYTES: usize = 64 * 1024 * 1024;

/// Parses a schema embedded in the binary. The schema tests guarantee every embedded schema
/// parses, so a failure here is a build defect, not a runtime condition.
pub(crate) fn parse_embedded(file: &str, json: &str) -> Schema {
    match Schema::parse_str(json) {
        Ok(schema) => schema,
        Err(error) => panic!("embedded schema schemas/{file} does not parse: {error}"),
    }
}

/// The Rabin fingerprint of a schema's Parsing Canonical Form. Equal fingerprints mean the same
/// binary layout (docs, defaults and logical types aside).
pub(crate) fn canonical_fingerprint(schema: &Schema) -> u64 {
    let fingerprint = schema.fingerprint::<Rabin>();
    let mut bytes = [0u8; 8];
    for (target, source) in bytes.iter_mut().zip(fingerprint.bytes.iter()) {
        *target = *source;
    }
    u64::from_le_bytes(bytes)
}

/// An event type's schema with its datum reader and writer, built once per type.
pub struct SchemaBinding {
    schema: &'static Schema,
    fingerprint: u64,
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
    names: Names<'static>,
}

impl SchemaBinding {
    /// Builds the reader and writer for `schema`. Panics if the schema's names don't resolve,
    /// which cannot happen for a schema that parsed (the parser resolves them).
    pub(crate) fn new(schema: &'static Schema) -> Self {
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
        let writer = GenericDatumWriter::builder(schema)
            .human_readable(false)
            .build()
            .unwrap_or_else(|error| panic!("cannot build a datum writer: {error}"));
        let reader = GenericDatumReader::builder(schema)
            .human_readable(false)
            .build()
            .unwrap_or_else(|error| panic!("cannot build a datum reader: {error}"));
        Self {
            schema,
            fingerprint: canonical_fingerprint(schema),
            writer,
            reader,
            names: Names::of(schema),
        }
    }

    /// The parsed schema.
    pub fn schema(&self) -> &'static Schema {
        self.schema
    }

    /// The Rabin fingerprint of the schema's canonical form.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub(crate) fn writer(&self) -> &GenericDatumWriter<'static> {
        &self.writer
    }

    pub(crate) fn reader(&self) -> &GenericDatumReader<'static> {
        &self.reader
    }

    pub(crate) fn names(&self) -> &Names<'static> {
        &self.names
    }
}

impl fmt::Debug for SchemaBinding {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SchemaBinding")
            .field("schema", &self.schema.canonical_form())
            .field("fingerprint", &format_args!("{:016x}", self.fingerprint))
            .finish_non_exhaustive()
    }
}

/// The schema a record was written with, as registered under its id.
#[derive(Debug, Clone)]
pub struct WriterSchema {
    id: u32,
    schema: Schema,
    fingerprint: u64,
}

impl WriterSchema {
    /// Parses a writer schema fetched from the registry.
    pub fn parse(id: u32, json: &str) -> Result<Self, crate::DecodeError> {
        let schema = Schema::parse_str(json)
            .map_err(|source| crate::DecodeError::WriterSchemaInvalid { id, source })?;
        Ok(Self::new(id, schema))
    }

    /// A writer schema from an already parsed schema.
    pub fn new(id: u32, schema: Schema) -> Self {
        let fingerprint = canonical_fingerprint(&schema);
        Self {
            id,
            schema,
            fingerprint,
        }
    }

    /// An event type's own schema under `id`: what a writer using our schemas registered.
    pub fn of<E: crate::Event>(id: u32) -> Self {
        Self {
            id,
            schema: E::schema().clone(),
            fingerprint: E::binding().fingerprint(),
        }
    }

    /// The registry's id of this schema.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The parsed schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The Rabin fingerprint of the schema's canonical form.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}
