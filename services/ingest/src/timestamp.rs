//! Provider timestamps to epoch milliseconds: WhatsApp sends strings of Unix seconds, RBM sends
//! RFC 3339 with up to nanoseconds. Pure and total: every input gives a value or a reason, never
//! a panic or an overflow.

/// `"1739321024"` → `1739321024000`.
pub fn unix_seconds_to_millis(seconds: i64) -> Result<i64, String> {
    seconds
        .checked_mul(1000)
        .ok_or_else(|| format!("timestamp {seconds} is out of range"))
}

/// Parses a string of Unix seconds (digits only, as WhatsApp sends them).
pub fn parse_unix_seconds(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("{text:?} is not a string of Unix seconds"));
    }
    trimmed
        .parse::<i64>()
        .map_err(|_| format!("{text:?} is out of range for Unix seconds"))
}

/// `"2024-05-01T12:00:00.123456789Z"` (or with a `+hh:mm` offset) → epoch milliseconds
/// (fractions below a millisecond are truncated).
pub fn rfc3339_to_millis(text: &str) -> Result<i64, String> {
    let invalid = || format!("{text:?} is not an RFC 3339 timestamp like 2024-05-01T12:00:00.123Z");
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return Err(invalid());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = &text[range];
        if part.bytes().all(|byte| byte.is_ascii_digit()) {
            part.parse::<i64>().map_err(|_| invalid())
        } else {
            Err(invalid())
        }
    };
    if bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't' | b' ') {
        return Err(invalid());
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return Err(invalid());
    }
    let year = number(0..4)?;
    let month = number(5..7)?;
    let day = number(8..10)?;
    let hour = number(11..13)?;
    let minute = number(14..16)?;
    let second = number(17..19)?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(invalid());
    }
    let mut position = 19;
    let mut millis = 0_i64;
    if bytes[position] == b'.' {
        position += 1;
        let start = position;
        while position < bytes.len() && bytes[position].is_ascii_digit() {
            position += 1;
        }
        let digits = &text[start..position];
        if digits.is_empty() {
            return Err(invalid());
        }
        for (index, digit) in digits.bytes().take(3).enumerate() {
            millis += i64::from(digit - b'0') * 10_i64.pow(2 - index as u32);
        }
    }
    let offset_minutes = match &text[position..] {
        "Z" | "z" => 0,
        offset if offset.len() == 6 && matches!(offset.as_bytes()[0], b'+' | b'-') => {
            if offset.as_bytes()[3] != b':' {
                return Err(invalid());
            }
            let hours = number(position + 1..position + 3)?;
            let minutes = number(position + 4..position + 6)?;
            if hours > 23 || minutes > 59 {
                return Err(invalid());
            }
            let sign = if offset.as_bytes()[0] == b'-' { -1 } else { 1 };
            sign * (hours * 60 + minutes)
        }
        _ => return Err(invalid()),
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap_year(year) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_become_millis() {
        assert_eq!(parse_unix_seconds("1739321024"), Ok(1_739_321_024));
        assert_eq!(unix_seconds_to_millis(1_739_321_024), Ok(1_739_321_024_000));
        assert!(parse_unix_seconds("17393x").is_err());
        assert!(parse_unix_seconds("").is_err());
        assert!(parse_unix_seconds("-5").is_err());
        assert!(parse_unix_seconds("99999999999999999999999").is_err());
        assert!(unix_seconds_to_millis(i64::MAX).is_err());
    }

    #[test]
    fn rfc3339_with_nanoseconds_and_offsets() {
        assert_eq!(rfc3339_to_millis("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            rfc3339_to_millis("2025-02-12T00:43:44.123456789Z"),
            Ok(1_739_321_024_123)
        );
        assert_eq!(
            rfc3339_to_millis("2025-02-12T01:43:44.5+01:00"),
            Ok(1_739_321_024_500)
        );
        assert_eq!(
            rfc3339_to_millis("2025-02-11T23:43:44-01:00"),
            Ok(1_739_321_024_000)
        );
        assert_eq!(
            rfc3339_to_millis("2024-02-29T00:00:00Z"),
            Ok(1_709_164_800_000)
        );
    }

    #[test]
    fn rfc3339_rejects_what_is_not_a_timestamp() {
        for bad in [
            "",
            "2025-02-12",
            "2025-02-12T00:43:44",
            "2025-13-12T00:43:44Z",
            "2023-02-29T00:00:00Z",
            "2025-02-12T24:00:00Z",
            "2025-02-12T00:43:44.Z",
            "2025-02-12T00:43:44+0100",
            "2025-02-12T00:43:44ZZ",
            "２０２5-02-12T00:43:44Z",
        ] {
            assert!(rfc3339_to_millis(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
