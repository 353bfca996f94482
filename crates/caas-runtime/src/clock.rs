//! The wall clock every CAAS process stamps events and measures rates with.

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_after_2025_and_moves_forward() {
        let first = super::now_millis();
        assert!(first > 1_735_689_600_000, "{first}");
        assert!(super::now_millis() >= first);
    }
}
