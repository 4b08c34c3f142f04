//! What the REST and GraphQL listings share: delivery states, times as RFC 3339, page
//! limits and cursors.

/// Where a delivery stands, as the REST API (`pending`) and GraphQL (`PENDING`) name it.
#[derive(poem_openapi::Enum, async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// Delivered.
    Delivered,
    /// Out of retries, or failed for good: a dead letter.
    Dead,
}

impl DeliveryState {
    /// The state as the store keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    /// A stored state; anything unknown reads as pending, the state that promises least.
    pub fn parse(stored: &str) -> DeliveryState {
        match stored {
            "delivered" => DeliveryState::Delivered,
            "dead" => DeliveryState::Dead,
            _ => DeliveryState::Pending,
        }
    }
}

/// A store time (Unix milliseconds) as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// An RFC 3339 time, with any offset, as Unix milliseconds (negative before 1970); the
/// error is a sentence for the caller.
pub fn parse_time(text: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(unix_ms)
        .map_err(|_| format!("`{text}` is not an RFC 3339 time such as 2026-11-24T09:30:00Z"))
}

/// A time as Unix milliseconds, as the store keeps times.
pub fn unix_ms(time: time::OffsetDateTime) -> i64 {
    (time.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The page size asked for, 50 when none, at most 500.
pub fn page_limit(limit: Option<i64>) -> Result<u32, String> {
    match limit.unwrap_or(50) {
        limit @ 1..=500 => Ok(limit as u32),
        other => Err(format!("limit {other} is not between 1 and 500")),
    }
}

/// Listings fetch one row more than the page holds, which tells whether another page
/// follows. This cuts `rows` to `limit` and returns the next page's cursor, if any.
pub fn next_page<T>(
    rows: &mut Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> String,
) -> Option<String> {
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(cursor)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_limits_are_checked() {
        let ms = 1_795_910_400_123;
        assert_eq!(rfc3339(ms), "2026-11-29T00:00:00.123Z");
        assert_eq!(parse_time(&rfc3339(ms)), Ok(ms));
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
        // Any offset, and times before 1970.
        assert_eq!(parse_time("2026-11-29T05:30:00.123+05:30"), Ok(ms));
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), Ok(-1000));
        assert_eq!(page_limit(None), Ok(50));
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(501)).is_err());
    }

    #[test]
    fn one_row_more_than_the_limit_means_a_next_page() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(next_page(&mut rows, 2, |n| n.to_string()), Some("2".into()));
        assert_eq!(rows, [1, 2]);
        assert_eq!(next_page(&mut rows, 2, |n| n.to_string()), None);
    }
}
