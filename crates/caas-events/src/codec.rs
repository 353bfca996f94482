//! Encoding and decoding through the schema registry, with every registry answer cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::binding::WriterSchema;
use crate::error::{DecodeError, EncodeError, RegistryError};
use crate::registry::RegistryClient;
use crate::{topics, wire, Event};

/// How a [`Codec`] treats the registry.
#[derive(Debug, Clone)]
pub struct CodecOptions {
    /// Register our schema under `<topic>-value` when it is not there yet (like Confluent's
    /// `auto.register.schemas`). When false, the schema must have been registered beforehand
    /// (`caasctl schemas apply`) and encoding fails with a 404 registry error otherwise.
    pub auto_register: bool,
    /// How long an id the registry said it does not know stays known-unknown, so a flood of
    /// such poison records does not become a flood of registry calls.
    pub unknown_id_ttl: Duration,
}

impl Default for CodecOptions {
    fn default() -> Self {
        Self {
            auto_register: true,
            unknown_id_ttl: Duration::from_secs(30),
        }
    }
}

/// Encodes and decodes events in the Confluent wire format, asking the registry only for what
/// it has not seen: each topic's schema id once, each writer schema once.
///
/// Cheap to clone; clones share the caches. Failed lookups are not cached (except "unknown id",
/// for [`CodecOptions::unknown_id_ttl`]), so a registry outage heals by itself.
#[derive(Debug, Clone)]
pub struct Codec {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: RegistryClient,
    options: CodecOptions,
    /// Our schema's id per topic. One cell per topic, so concurrent first encodes make one call.
    subject_ids: Mutex<HashMap<&'static str, Arc<OnceCell<u32>>>>,
    /// Parsed writer schemas per id, one cell per id for the same reason.
    writer_schemas: Mutex<HashMap<u32, Arc<OnceCell<Arc<WriterSchema>>>>>,
    /// Ids the registry answered 404 for, and when.
    unknown_ids: Mutex<HashMap<u32, Instant>>,
}

/// Locks a cache map. A panic while holding one of these locks cannot leave a map half-updated
/// (each critical section is one insert or lookup), so a poisoned lock is safe to reuse.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Codec {
    /// A codec for the registry at `registry_url` (e.g. `http://127.0.0.1:8081/apis/ccompat/v7`)
    /// with default options.
    pub fn new(registry_url: impl Into<String>) -> Result<Self, RegistryError> {
        Ok(Self::with_registry(
            RegistryClient::new(registry_url)?,
            CodecOptions::default(),
        ))
    }

    /// A codec over an existing registry client.
    pub fn with_registry(registry: RegistryClient, options: CodecOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                options,
                subject_ids: Mutex::new(HashMap::new()),
                writer_schemas: Mutex::new(HashMap::new()),
                unknown_ids: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The registry client.
    pub fn registry(&self) -> &RegistryClient {
        &self.inner.registry
    }

    /// The id of `E`'s schema under `<topic>-value`: looked up (and registered if allowed) on
    /// the first call, cached afterwards. Call it at start-up to fail fast and warm the cache.
    pub async fn schema_id<E: Event>(&self) -> Result<u32, EncodeError> {
        let cell = {
            let mut subject_ids = lock(&self.inner.subject_ids);
            Arc::clone(subject_ids.entry(E::TOPIC).or_default())
        };
        let id = cell
            .get_or_try_init(|| self.resolve_subject_id::<E>())
            .await?;
        Ok(*id)
    }

    async fn resolve_subject_id<E: Event>(&self) -> Result<u32, EncodeError> {
        let subject = topics::value_subject(E::TOPIC);
        let registry = &self.inner.registry;
        let registry_error = |source| EncodeError::Registry {
            subject: subject.clone(),
            source,
        };
        if let Some(id) = registry
            .lookup(&subject, E::SCHEMA_JSON)
            .await
            .map_err(registry_error)?
        {
            tracing::debug!(subject, id, "schema found in registry");
            return Ok(id);
        }
        if !self.inner.options.auto_register {
            return Err(registry_error(RegistryError::Status {
                method: "POST",
                url: format!("{}/subjects/{subject}", registry.base_url()),
                status: 404,
                error_code: Some(40403),
                message:
                    "schema not registered and auto_register is off; run `caasctl schemas apply`"
                        .to_string(),
            }));
        }
        let id = registry
            .register(&subject, E::SCHEMA_JSON)
            .await
            .map_err(registry_error)?;
        tracing::info!(subject, id, "schema registered");
        Ok(id)
    }

    /// Encodes `event` in the wire format under its topic's schema id. Only the first call per
    /// topic may talk to the registry.
    pub async fn encode<E: Event>(&self, event: &E) -> Result<Vec<u8>, EncodeError> {
        let id = self.schema_id::<E>().await?;
        wire::encode(id, event)
    }

    /// The writer schema registered under `id`, fetched on first use and cached.
    pub async fn writer_schema(&self, id: u32) -> Result<Arc<WriterSchema>, DecodeError> {
        let cell = {
            let mut writer_schemas = lock(&self.inner.writer_schemas);
            if let Some(cell) = writer_schemas.get(&id) {
                if let Some(schema) = cell.get() {
                    return Ok(Arc::clone(schema));
                }
            }
            if self.is_known_unknown(id) {
                return Err(DecodeError::UnknownSchemaId { id });
            }
            Arc::clone(writer_schemas.entry(id).or_default())
        };
        let schema = cell.get_or_try_init(|| self.fetch_writer_schema(id)).await;
        match schema {
            Ok(schema) => Ok(Arc::clone(schema)),
            Err(error) => {
                if matches!(error, DecodeError::UnknownSchemaId { .. }) {
                    // Don't keep an empty cell per bogus id: a stream of random ids would
                    // otherwise grow the map without bound.
                    lock(&self.inner.writer_schemas).remove(&id);
                }
                Err(error)
            }
        }
    }

    fn is_known_unknown(&self, id: u32) -> bool {
        let mut unknown_ids = lock(&self.inner.unknown_ids);
        let ttl = self.inner.options.unknown_id_ttl;
        unknown_ids.retain(|_, since| since.elapsed() < ttl);
        unknown_ids.contains_key(&id)
    }

    async fn fetch_writer_schema(&self, id: u32) -> Result<Arc<WriterSchema>, DecodeError> {
        match self.inner.registry.schema_by_id(id).await {
            Ok(json) => {
                tracing::debug!(id, "writer schema fetched");
                WriterSchema::parse(id, &json).map(Arc::new)
            }
            Err(error) if error.is_not_found() => {
                lock(&self.inner.unknown_ids).insert(id, Instant::now());
                Err(DecodeError::UnknownSchemaId { id })
            }
            Err(source) => Err(DecodeError::Registry { id, source }),
        }
    }

    /// Decodes a framed record into `E`, resolving the writer's schema to `E`'s. Only the first
    /// record per writer schema id may talk to the registry.
    pub async fn decode<E: Event>(&self, bytes: &[u8]) -> Result<E, DecodeError> {
        let (id, body) = wire::split(bytes)?;
        let writer = self.writer_schema(id).await?;
        wire::decode_body(&writer, body)
    }
}
