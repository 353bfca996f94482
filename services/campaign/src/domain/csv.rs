//! A streaming CSV reader (RFC 4180 with the usual leniencies) that is fed chunks of bytes as
//! they arrive and yields records with the line they start on.
//!
//! Memory stays bounded whatever the input: a field longer than [`CsvReader::MAX_FIELD_BYTES`]
//! (typically a quote that is never closed) makes its record an error, and reading resumes on
//! the next line, so one bad row never takes the rest of a million-row upload with it.
//!
//! - the delimiter is `,`, `;` or a tab, whichever the first line holds most of (spreadsheets
//!   in many locales export `;`);
//! - a UTF-8 byte order mark is skipped; `\r\n` and `\n` both end a line; empty lines are
//!   ignored;
//! - `"` starts a quoted field only at the start of a field; inside it `""` is a quote and
//!   newlines are data (the record keeps the line it started on);
//! - a character after a closing quote, a field that is not UTF-8 or an unterminated quote
//!   makes the record an error that names what is wrong.

/// One record: the line (1-based) it starts on, and its fields or what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRecord {
    /// The physical line the record starts on.
    pub line: u64,
    /// The fields, or why the record could not be read.
    pub fields: Result<Vec<String>, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
    SkipToLineEnd,
}

/// The incremental reader; see the module docs.
#[derive(Debug)]
pub struct CsvReader {
    delimiter: Option<u8>,
    /// Bytes held back until the first line is complete and the delimiter is known.
    first_line: Vec<u8>,
    state: State,
    field: Vec<u8>,
    fields: Vec<Vec<u8>>,
    error: Option<String>,
    line: u64,
    record_line: u64,
    in_record: bool,
    at_start: bool,
}

impl Default for CsvReader {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvReader {
    /// The longest field accepted, in bytes.
    pub const MAX_FIELD_BYTES: usize = 4096;
    /// How much of the first line is inspected to choose the delimiter.
    const SNIFF_BYTES: usize = 64 * 1024;

    /// A reader that detects the delimiter from the first line.
    pub fn new() -> Self {
        Self {
            delimiter: None,
            first_line: Vec::new(),
            state: State::FieldStart,
            field: Vec::new(),
            fields: Vec::new(),
            error: None,
            line: 1,
            record_line: 1,
            in_record: false,
            at_start: true,
        }
    }

    /// A reader with a fixed delimiter.
    pub fn with_delimiter(delimiter: u8) -> Self {
        Self {
            delimiter: Some(delimiter),
            ..Self::new()
        }
    }

    /// The delimiter in use, once known.
    pub fn delimiter(&self) -> Option<u8> {
        self.delimiter
    }

    /// Read a chunk; complete records are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<CsvRecord>) {
        if self.at_start {
            // Hold the first bytes until a byte order mark can be recognised.
            self.first_line.extend_from_slice(chunk);
            if self.first_line.len() < 3 && !self.first_line.contains(&b'\n') {
                return;
            }
            self.at_start = false;
            let held = std::mem::take(&mut self.first_line);
            self.feed_after_bom(strip_bom(&held), out);
            return;
        }
        self.feed_after_bom(chunk, out);
    }

    fn feed_after_bom(&mut self, chunk: &[u8], out: &mut Vec<CsvRecord>) {
        if self.delimiter.is_some() {
            self.consume(chunk, out);
            return;
        }
        self.first_line.extend_from_slice(chunk);
        if !self.first_line.contains(&b'\n') && self.first_line.len() < Self::SNIFF_BYTES {
            return;
        }
        self.delimiter = Some(sniff_delimiter(&self.first_line));
        let held = std::mem::take(&mut self.first_line);
        self.consume(&held, out);
    }

    /// The input ended: the last record (without a final newline) is emitted.
    pub fn finish(&mut self, out: &mut Vec<CsvRecord>) {
        if self.at_start {
            self.at_start = false;
            let held = std::mem::take(&mut self.first_line);
            self.feed_after_bom(strip_bom(&held), out);
        }
        if self.delimiter.is_none() {
            self.delimiter = Some(sniff_delimiter(&self.first_line));
            let held = std::mem::take(&mut self.first_line);
            self.consume(&held, out);
        }
        match self.state {
            State::Quoted => {
                self.error
                    .get_or_insert_with(|| "a quoted field is never closed".to_string());
                self.end_record(out);
            }
            State::SkipToLineEnd => self.end_record(out),
            _ => {
                if self.in_record {
                    self.end_field();
                    self.end_record(out);
                }
            }
        }
    }

    fn consume(&mut self, bytes: &[u8], out: &mut Vec<CsvRecord>) {
        let delimiter = self.delimiter.unwrap_or(b',');
        for &byte in bytes {
            match self.state {
                State::FieldStart => {
                    if byte == b'\n' {
                        if self.in_record {
                            self.end_field();
                            self.end_record(out);
                        }
                        self.line += 1;
                        continue;
                    }
                    if byte == b'\r' {
                        continue;
                    }
                    self.begin_record();
                    if byte == b'"' {
                        self.state = State::Quoted;
                    } else if byte == delimiter {
                        self.end_field();
                    } else {
                        self.field.push(byte);
                        self.state = State::Unquoted;
                    }
                }
                State::Unquoted => {
                    if byte == delimiter {
                        self.end_field();
                        self.state = State::FieldStart;
                    } else if byte == b'\n' {
                        self.end_field();
                        self.end_record(out);
                        self.line += 1;
                    } else if byte != b'\r' {
                        self.push(byte);
                    }
                }
                State::Quoted => {
                    if byte == b'"' {
                        self.state = State::QuoteInQuoted;
                    } else {
                        if byte == b'\n' {
                            self.line += 1;
                        }
                        self.push(byte);
                    }
                }
                State::QuoteInQuoted => {
                    if byte == b'"' {
                        self.push(b'"');
                        self.state = State::Quoted;
                    } else if byte == delimiter {
                        self.end_field();
                        self.state = State::FieldStart;
                    } else if byte == b'\n' {
                        self.end_field();
                        self.end_record(out);
                        self.line += 1;
                    } else if byte != b'\r' {
                        self.fail(format!(
                            "unexpected {:?} after a closing quote (quotes inside a quoted field are written \"\")",
                            char::from(byte)
                        ));
                    }
                }
                State::SkipToLineEnd => {
                    if byte == b'\n' {
                        self.end_record(out);
                        self.line += 1;
                    }
                }
            }
        }
    }

    fn begin_record(&mut self) {
        if !self.in_record {
            self.in_record = true;
            self.record_line = self.line;
        }
    }

    fn push(&mut self, byte: u8) {
        if self.field.len() >= Self::MAX_FIELD_BYTES {
            self.fail(format!(
                "a field is longer than {} bytes (is a closing quote missing?)",
                Self::MAX_FIELD_BYTES
            ));
            return;
        }
        self.field.push(byte);
    }

    fn fail(&mut self, reason: String) {
        self.error.get_or_insert(reason);
        self.field.clear();
        self.state = State::SkipToLineEnd;
    }

    fn end_field(&mut self) {
        self.fields.push(std::mem::take(&mut self.field));
    }

    fn end_record(&mut self, out: &mut Vec<CsvRecord>) {
        let raw_fields = std::mem::take(&mut self.fields);
        let fields = match self.error.take() {
            Some(reason) => Err(reason),
            None => raw_fields
                .into_iter()
                .map(|field| {
                    String::from_utf8(field)
                        .map_err(|_| "the row is not valid UTF-8 text".to_string())
                })
                .collect(),
        };
        out.push(CsvRecord {
            line: self.record_line,
            fields,
        });
        self.field.clear();
        self.in_record = false;
        self.state = State::FieldStart;
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// `,`, `;` or tab: whichever the first line (outside quotes) holds most of; `,` on a tie.
fn sniff_delimiter(text: &[u8]) -> u8 {
    let first_line = text.split(|byte| *byte == b'\n').next().unwrap_or_default();
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &byte in first_line {
        if byte == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for (candidate, count) in counts.iter_mut() {
                if *candidate == byte {
                    *count += 1;
                }
            }
        }
    }
    counts
        .iter()
        .fold((b',', 0), |best, &(candidate, count)| {
            if count > best.1 {
                (candidate, count)
            } else {
                best
            }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_in_chunks(input: &[u8], chunk_size: usize) -> Vec<CsvRecord> {
        let mut reader = CsvReader::new();
        let mut out = Vec::new();
        for chunk in input.chunks(chunk_size.max(1)) {
            reader.feed(chunk, &mut out);
        }
        reader.finish(&mut out);
        out
    }

    fn ok(line: u64, fields: &[&str]) -> CsvRecord {
        CsvRecord {
            line,
            fields: Ok(fields.iter().map(|field| field.to_string()).collect()),
        }
    }

    #[test]
    fn quoted_fields_newlines_and_line_numbers() {
        let input = b"\xEF\xBB\xBFphone,name,note\r\n+4915112345678,Ada,\"says \"\"hi\"\"\"\n\n+4915112345679,\"Bob\nSmith\",x\n+4915112345670,,\n";
        let records = read_in_chunks(input, 1000);
        assert_eq!(
            records,
            vec![
                ok(1, &["phone", "name", "note"]),
                ok(2, &["+4915112345678", "Ada", "says \"hi\""]),
                ok(4, &["+4915112345679", "Bob\nSmith", "x"]),
                ok(6, &["+4915112345670", "", ""]),
            ]
        );
    }

    #[test]
    fn semicolons_and_tabs_are_detected_from_the_first_line() {
        let records = read_in_chunks(b"phone;name\n491511;M\xC3\xBCller, Anna", 3);
        assert_eq!(
            records,
            vec![
                ok(1, &["phone", "name"]),
                ok(2, &["491511", "Müller, Anna"])
            ]
        );
        let records = read_in_chunks(b"phone\tname\n1\t2", 2);
        assert_eq!(records[1], ok(2, &["1", "2"]));
    }

    #[test]
    fn a_bad_row_is_reported_and_the_rest_is_read() {
        let input = b"phone,name\n1,\"a\"b\n2,ok\n3,\xFF\n4,\"never closed\n5,fine";
        let records = read_in_chunks(input, 5);
        assert_eq!(records[0], ok(1, &["phone", "name"]));
        assert_eq!(records[1].line, 2);
        assert!(records[1]
            .fields
            .as_ref()
            .unwrap_err()
            .contains("closing quote"));
        assert_eq!(records[2], ok(3, &["2", "ok"]));
        assert_eq!(records[3].line, 4);
        assert!(records[3].fields.as_ref().unwrap_err().contains("UTF-8"));
        // The unterminated quote swallows the rest of the input as one field: at the end it
        // is reported on the line it started on.
        assert_eq!(records[4].line, 5);
        assert!(records[4]
            .fields
            .as_ref()
            .unwrap_err()
            .contains("never closed"));
        assert_eq!(records.len(), 5);
    }

    #[test]
    fn a_runaway_quote_is_cut_off_and_reading_resumes() {
        let mut input = b"phone,name\n1,\"".to_vec();
        input.extend(std::iter::repeat_n(b'x', CsvReader::MAX_FIELD_BYTES + 10));
        input.extend_from_slice(b"\n2,after\n");
        let records = read_in_chunks(&input, 777);
        assert_eq!(records.len(), 3);
        assert!(records[1]
            .fields
            .as_ref()
            .unwrap_err()
            .contains("longer than"));
        assert_eq!(records[2], ok(3, &["2", "after"]));
    }

    #[test]
    fn a_million_rows_stream_through_in_small_chunks() {
        let mut reader = CsvReader::new();
        let mut out = Vec::new();
        let mut seen = 0u64;
        let mut last_line = 0;
        reader.feed(b"phone,first_name\n", &mut out);
        for row in 0..1_000_000u64 {
            let line = format!("+49151{row:08},n{row}\n");
            reader.feed(line.as_bytes(), &mut out);
            for record in out.drain(..) {
                seen += 1;
                last_line = record.line;
            }
        }
        reader.finish(&mut out);
        seen += out.len() as u64;
        assert_eq!(seen, 1_000_001);
        assert_eq!(last_line, 1_000_001);
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_records(
            rows in prop::collection::vec(prop::collection::vec("[a-z0-9 ,\"\n]{0,6}", 1..4), 0..12),
            chunk_size in 1usize..17,
        ) {
            let mut text = String::from("phone,x\n");
            for row in &rows {
                let quoted: Vec<String> = row
                    .iter()
                    .map(|field| format!("\"{}\"", field.replace('"', "\"\"")))
                    .collect();
                text.push_str(&quoted.join(","));
                text.push('\n');
            }
            let whole = read_in_chunks(text.as_bytes(), text.len() + 1);
            let chunked = read_in_chunks(text.as_bytes(), chunk_size);
            prop_assert_eq!(&whole, &chunked);
            prop_assert_eq!(whole.len(), rows.len() + 1);
            for (record, row) in whole.iter().skip(1).zip(&rows) {
                prop_assert_eq!(record.fields.as_ref().unwrap(), row);
            }
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300), chunk_size in 1usize..9) {
            let records = read_in_chunks(&bytes, chunk_size);
            let mut previous = 0;
            for record in records {
                prop_assert!(record.line >= previous);
                previous = record.line;
            }
        }
    }
}
