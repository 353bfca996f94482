//! Why a webhook body was refused. Every message says where in the body the problem is and what
//! was expected, because it ends up in the 400 answer a provider (or a developer with curl) reads.

/// A body that is not what the provider sends. Answered 400; nothing is produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes are not JSON at all (syntax error, truncated, not UTF-8).
    #[error("the body is not valid JSON: {reason}")]
    InvalidJson {
        /// The JSON parser's message, with line and column.
        reason: String,
    },
    /// Valid JSON, but not of the shape the provider documents.
    #[error("{path}: {reason}")]
    WrongShape {
        /// Where in the body, e.g. `entry[0].changes[1].value.messages[2]`.
        path: String,
        /// What is wrong there.
        reason: String,
    },
}

impl ParseError {
    /// A stable machine-readable code for the JSON error answer.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::InvalidJson { .. } => "invalid_json",
            ParseError::WrongShape { .. } => "invalid_payload",
        }
    }

    /// A wrong-shape error at `path`.
    pub(crate) fn shape(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ParseError::WrongShape {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Classifies a serde_json error met while reading the value at `path`: a syntax error is
    /// bad JSON, anything else is a wrong shape.
    pub(crate) fn from_json(path: &str, error: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        match error.classify() {
            Category::Syntax | Category::Eof | Category::Io => ParseError::InvalidJson {
                reason: error.to_string(),
            },
            Category::Data => ParseError::shape(path, error.to_string()),
        }
    }
}
