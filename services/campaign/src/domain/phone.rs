//! Phone numbers as the channels' conversation keys spell them: WhatsApp `wa_id`s are digits
//! without `+` (`4915112345678`), RCS numbers are E.164 with `+` (`+4915112345678`). A campaign
//! stores its recipients in that form, so a STOP from the customer (keyed the same way by
//! ingest) finds them.

use caas_events::model::Channel;

/// Why a number was refused; the message is shown to whoever uploaded the audience.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Nothing in the cell.
    #[error("the phone number is empty")]
    Empty,
    /// Letters or symbols other than spacing and `+`.
    #[error("{0:?} is not a phone number: only digits, spaces, '-', '.', '(', ')' and a leading '+' are allowed")]
    Characters(String),
    /// A national number (leading 0) or a trunk prefix: the country is unknown.
    #[error(
        "{0:?} is not in international format: write it with the country code, e.g. +4915112345678"
    )]
    National(String),
    /// Fewer than 8 or more than 15 digits (E.164 allows at most 15).
    #[error("{number:?} has {digits} digits; an international number has 8 to 15")]
    Length {
        /// The number as given.
        number: String,
        /// How many digits it had.
        digits: usize,
    },
}

/// The number in the form `channel` uses in conversation keys.
pub fn normalize(raw: &str, channel: Channel) -> Result<String, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    let mut digits = String::with_capacity(trimmed.len());
    let mut plus = false;
    for (index, character) in trimmed.chars().enumerate() {
        match character {
            '0'..='9' => digits.push(character),
            '+' if index == 0 => plus = true,
            ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' => {}
            _ => return Err(PhoneError::Characters(trimmed.to_string())),
        }
    }
    if !plus {
        if let Some(international) = digits.strip_prefix("00") {
            digits = international.to_string();
        } else if digits.starts_with('0') {
            return Err(PhoneError::National(trimmed.to_string()));
        }
    }
    if digits.starts_with('0') {
        return Err(PhoneError::National(trimmed.to_string()));
    }
    if !(8..=15).contains(&digits.len()) {
        return Err(PhoneError::Length {
            number: trimmed.to_string(),
            digits: digits.len(),
        });
    }
    Ok(match channel {
        Channel::Whatsapp => digits,
        Channel::Rcs => format!("+{digits}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_spelling_of_one_number_is_one_recipient() {
        for raw in [
            "+49 151 12345678",
            "+49-151-1234-5678",
            "0049 (151) 12345678",
            "4915112345678",
            " +49.151.12345678 ",
        ] {
            assert_eq!(
                normalize(raw, Channel::Whatsapp).unwrap(),
                "4915112345678",
                "{raw}"
            );
            assert_eq!(
                normalize(raw, Channel::Rcs).unwrap(),
                "+4915112345678",
                "{raw}"
            );
        }
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        assert_eq!(normalize("  ", Channel::Whatsapp), Err(PhoneError::Empty));
        assert!(matches!(
            normalize("0151 1234567", Channel::Whatsapp),
            Err(PhoneError::National(_))
        ));
        assert!(matches!(
            normalize("+49 151 CALL ME", Channel::Whatsapp),
            Err(PhoneError::Characters(_))
        ));
        assert!(matches!(
            normalize("+49 12", Channel::Rcs),
            Err(PhoneError::Length { digits: 4, .. })
        ));
        assert!(matches!(
            normalize("+1234567890123456", Channel::Rcs),
            Err(PhoneError::Length { digits: 16, .. })
        ));
        assert!(matches!(
            normalize("1+49151", Channel::Rcs),
            Err(PhoneError::Characters(_))
        ));
        let message = normalize("0151 1234567", Channel::Whatsapp)
            .unwrap_err()
            .to_string();
        assert!(message.contains("country code"), "{message}");
    }

    proptest! {
        #[test]
        fn accepted_numbers_are_canonical_and_stable(raw in ".{0,24}") {
            if let Ok(number) = normalize(&raw, Channel::Rcs) {
                prop_assert!(number.starts_with('+'));
                prop_assert!(number[1..].chars().all(|c| c.is_ascii_digit()));
                prop_assert_eq!(normalize(&number, Channel::Rcs).unwrap(), number.clone());
                prop_assert_eq!(normalize(&number, Channel::Whatsapp).unwrap(), number[1..].to_string());
            }
        }
    }
}
