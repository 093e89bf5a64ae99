//! RFC 3339 timestamps (UTC) without a date-time dependency: the state files and the journal
//! only ever write "now" and read back what they wrote.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (milliseconds); times before 1970 clamp to the epoch.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let base = rfc3339(t);
    format!("{}.{:03}Z", base.trim_end_matches('Z'), d.subsec_millis())
}

/// Formats `t` as `YYYY-MM-DDTHH:MM:SSZ`; times before 1970 clamp to the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The current time as RFC 3339 (whole seconds), as the playbooks' state files write it.
pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// Parses what [`rfc3339`] and [`rfc3339_millis`] write back into milliseconds since the epoch.
pub fn parse_millis(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let millis = match s.get(19..20) {
        Some(".") => s.get(20..23)?.parse::<u64>().ok()?,
        _ => 0,
    };
    let days = days_from_civil(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    Some(u64::try_from(secs).ok()? * 1000 + millis)
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm, proleptic Gregorian.
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_704_880_800_123);
        assert_eq!(rfc3339(t), "2024-01-10T10:00:00Z");
        assert_eq!(rfc3339_millis(t), "2024-01-10T10:00:00.123Z");
        assert_eq!(parse_millis("2024-01-10T10:00:00.123Z"), Some(1_704_880_800_123));
        assert_eq!(parse_millis("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(parse_millis("garbage"), None);
        for secs in [0u64, 951_782_400, 4_102_444_799, 1_234_567_890] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_millis(&rfc3339(t)), Some(secs * 1000));
        }
    }
}
