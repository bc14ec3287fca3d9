//! Wall-clock time as the server shows and stores it: Unix seconds, and
//! RFC 3339 text in UTC (through `chrono`).

use chrono::{DateTime, SecondsFormat, Utc};

/// Seconds since the Unix epoch, now (0 if the clock is before it).
pub fn unix_now() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}

/// Unix seconds as RFC 3339 UTC: `2026-11-24T18:04:12Z`.
pub fn rfc3339(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Now, as RFC 3339 UTC with milliseconds: `2026-11-25T18:04:12.345Z`.
pub fn rfc3339_millis_now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_543_452), "2026-11-24T18:04:12Z");
        assert_eq!(rfc3339(u64::MAX), "1970-01-01T00:00:00Z");
        let now = rfc3339_millis_now();
        assert!(
            now.len() == 24 && now.ends_with('Z') && now.as_bytes()[19] == b'.',
            "{now}"
        );
        assert!(unix_now() > 1_700_000_000);
    }
}
