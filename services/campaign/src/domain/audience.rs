//! An audience: CSV (or JSON) rows → recipients, each valid (an E.164 number and its
//! parameters) or invalid with the reason and the line it came from.
//!
//! The first CSV row is the header. One column holds the number (any of
//! [`PHONE_COLUMNS`], case-insensitive); every other column is a parameter the template can use
//! as `{{column}}`. Numbers are stored channel-neutral (E.164 with `+`); [`for_channel`] gives
//! the form of a campaign's channel.

use std::collections::BTreeMap;

use caas_events::model::Channel;

use super::csv::CsvRecord;
use super::phone;

/// Names accepted for the column holding the number.
pub const PHONE_COLUMNS: &[&str] = &[
    "phone",
    "phone_number",
    "to",
    "recipient",
    "number",
    "msisdn",
    "mobile",
    "wa_id",
    "customer_id",
];

/// The longest column name accepted.
const MAX_COLUMN_NAME: usize = 64;

/// The interpreted header row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Index of the number's column.
    pub phone_index: usize,
    /// Every column name, trimmed, in order.
    pub columns: Vec<String>,
}

impl Header {
    /// Read the header row; the error says what is missing.
    pub fn parse(fields: &[String]) -> Result<Self, String> {
        let columns: Vec<String> = fields.iter().map(|name| name.trim().to_string()).collect();
        let mut seen = std::collections::BTreeSet::new();
        for name in &columns {
            if name.is_empty() {
                return Err("the header row has an empty column name".to_string());
            }
            if name.len() > MAX_COLUMN_NAME
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '))
            {
                return Err(format!(
                    "column name {name:?} is not usable as a template parameter: use letters, digits, '_', '-', '.' (at most {MAX_COLUMN_NAME})"
                ));
            }
            if !seen.insert(name.to_lowercase()) {
                return Err(format!("column {name:?} appears twice in the header row"));
            }
        }
        let phone_index = columns
            .iter()
            .position(|name| PHONE_COLUMNS.contains(&name.to_lowercase().as_str()))
            .ok_or_else(|| {
                format!(
                    "the header row has no phone number column; name one of: {}",
                    PHONE_COLUMNS.join(", ")
                )
            })?;
        Ok(Self {
            phone_index,
            columns,
        })
    }

    /// The parameter columns (all but the number's).
    pub fn parameter_columns(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .enumerate()
            .filter(move |(index, _)| *index != self.phone_index)
            .map(|(_, name)| name.as_str())
    }
}

/// One audience row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceRow {
    /// The CSV line (or the 1-based position in a JSON list).
    pub line: u64,
    /// The number as given (for the error report).
    pub raw: String,
    /// The E.164 number (`+` and digits), or why the row is not usable.
    pub to: Result<String, String>,
    /// Parameter values by column name.
    pub params: BTreeMap<String, String>,
}

impl AudienceRow {
    /// A row from a CSV record under `header`.
    pub fn from_csv(header: &Header, record: &CsvRecord) -> Self {
        let fields = match &record.fields {
            Ok(fields) => fields,
            Err(reason) => {
                return Self {
                    line: record.line,
                    raw: String::new(),
                    to: Err(reason.clone()),
                    params: BTreeMap::new(),
                }
            }
        };
        let raw = fields
            .get(header.phone_index)
            .map(|value| value.trim().to_string())
            .unwrap_or_default();
        if fields.len() > header.columns.len() {
            return Self {
                line: record.line,
                raw,
                to: Err(format!(
                    "the row has {} fields but the header has {} columns",
                    fields.len(),
                    header.columns.len()
                )),
                params: BTreeMap::new(),
            };
        }
        let params = header
            .columns
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != header.phone_index)
            .map(|(index, name)| {
                (
                    name.clone(),
                    fields
                        .get(index)
                        .map(|value| value.trim().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        Self::new(record.line, raw, params)
    }

    /// A row from a number and its parameters (JSON audiences).
    pub fn new(line: u64, raw: String, params: BTreeMap<String, String>) -> Self {
        let to = phone::normalize(&raw, Channel::Rcs).map_err(|error| error.to_string());
        Self {
            line,
            raw,
            to,
            params,
        }
    }
}

/// A stored E.164 number (`+4915112345678`) in the form `channel`'s conversation keys use.
pub fn for_channel(e164: &str, channel: Channel) -> String {
    match channel {
        Channel::Whatsapp => e164.trim_start_matches('+').to_string(),
        Channel::Rcs => e164.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| value.to_string()).collect()
    }

    #[test]
    fn the_phone_column_is_found_by_any_usual_name() {
        let header = Header::parse(&strings(&["first_name", "Phone", "order"])).unwrap();
        assert_eq!(header.phone_index, 1);
        assert_eq!(
            header.parameter_columns().collect::<Vec<_>>(),
            vec!["first_name", "order"]
        );
        let error = Header::parse(&strings(&["name", "email"])).unwrap_err();
        assert!(error.contains("no phone number column"), "{error}");
        let error = Header::parse(&strings(&["phone", "x", "X"])).unwrap_err();
        assert!(error.contains("twice"), "{error}");
        let error = Header::parse(&strings(&["phone", "{{x}}"])).unwrap_err();
        assert!(error.contains("not usable"), "{error}");
    }

    #[test]
    fn rows_become_numbers_and_parameters_or_a_reason() {
        let header = Header::parse(&strings(&["phone", "first_name"])).unwrap();
        let row = AudienceRow::from_csv(
            &header,
            &CsvRecord {
                line: 7,
                fields: Ok(strings(&[" +49 151 12345678 ", " Ada "])),
            },
        );
        assert_eq!(row.to.as_deref(), Ok("+4915112345678"));
        assert_eq!(row.params["first_name"], "Ada");
        assert_eq!(
            for_channel("+4915112345678", Channel::Whatsapp),
            "4915112345678"
        );

        let short = AudienceRow::from_csv(
            &header,
            &CsvRecord {
                line: 8,
                fields: Ok(strings(&["+49151123"])),
            },
        );
        assert_eq!(short.to.as_deref(), Ok("+49151123"));
        assert_eq!(short.params["first_name"], "");

        let bad = AudienceRow::from_csv(
            &header,
            &CsvRecord {
                line: 9,
                fields: Ok(strings(&["call me", "Bob"])),
            },
        );
        assert_eq!(bad.line, 9);
        assert!(bad.to.unwrap_err().contains("not a phone number"));

        let wide = AudienceRow::from_csv(
            &header,
            &CsvRecord {
                line: 10,
                fields: Ok(strings(&["+4915112345678", "a", "b"])),
            },
        );
        assert!(wide.to.unwrap_err().contains("3 fields"));

        let unreadable = AudienceRow::from_csv(
            &header,
            &CsvRecord {
                line: 11,
                fields: Err("a quoted field is never closed".into()),
            },
        );
        assert_eq!(unreadable.to.unwrap_err(), "a quoted field is never closed");
    }
}
