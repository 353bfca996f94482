//! The logger's errors: one enum per thing a caller handles differently.

/// Writing to or preparing MongoDB failed. Always transient from the consumer's point of view
/// (the batch is retried); the message says which operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The driver or the server refused an operation.
    #[error("mongodb {operation} failed: {source}")]
    Mongo {
        /// What was being done, e.g. `load conversations`.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
    },
    /// A write command answered with per-statement errors.
    #[error("mongodb {operation} reported write errors: {details}")]
    WriteErrors {
        /// What was being written.
        operation: &'static str,
        /// The server's `writeErrors`, as text.
        details: String,
    },
    /// A stored document does not have the shape this version expects.
    #[error("a stored {collection} document cannot be read: {source}")]
    Corrupt {
        /// The collection.
        collection: &'static str,
        /// The decoding error.
        #[source]
        source: Box<mongodb::bson::de::Error>,
    },
    /// The server did not finish a batch's transaction in time (a hung call, not an error
    /// answer). The batch is retried; whatever the server did meanwhile is aborted or, if it
    /// committed, seen as stored by the retry.
    #[error("mongodb {operation} did not finish within {} s", .after.as_secs())]
    Deadline {
        /// What was being done.
        operation: &'static str,
        /// The time it was given.
        after: std::time::Duration,
    },
    /// A document could not be turned into BSON.
    #[error("cannot encode a {collection} document: {source}")]
    Encode {
        /// The collection.
        collection: &'static str,
        /// The encoding error.
        #[source]
        source: Box<mongodb::bson::ser::Error>,
    },
}

impl StoreError {
    /// A driver error during `operation`.
    pub fn mongo(operation: &'static str) -> impl FnOnce(mongodb::error::Error) -> Self {
        move |source| Self::Mongo { operation, source }
    }
}

/// Exporting or erasing a customer's data failed.
#[derive(Debug, thiserror::Error)]
pub enum DataRightsError {
    /// The request itself is unusable.
    #[error("invalid data-rights request: {0}")]
    InvalidRequest(String),
    /// MongoDB failed; nothing is reported as done that was not.
    #[error("mongodb {operation} failed: {source}")]
    Mongo {
        /// What was being done.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
    },
    /// Redis failed (presence or de-duplication keys).
    #[error("redis {operation} failed: {reason}")]
    Redis {
        /// What was being done.
        operation: &'static str,
        /// What Redis or the client said.
        reason: String,
    },
    /// Writing the export failed.
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
}

impl DataRightsError {
    /// A driver error during `operation`.
    pub fn mongo(operation: &'static str) -> impl FnOnce(mongodb::error::Error) -> Self {
        move |source| Self::Mongo { operation, source }
    }
}
