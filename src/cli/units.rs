//! Docker's human-readable sizes and durations (github.com/docker/go-units).

use gotemplate::format_float_g;

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/// `units.HumanSizeWithPrecision`: decimal units, `%.*g` formatting
/// (`4.26MB`, `100B`, `1e+03kB` for 999.9 kB, as docker prints).
pub fn human_size_with_precision(size: f64, precision: i32) -> String {
    let mut size = size;
    let mut i = 0;
    while size >= 1000.0 && i < DECIMAL.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", format_float_g(size, precision), DECIMAL[i])
}

/// `units.HumanSize`: precision 4 (used by `system df` and prune totals).
pub fn human_size(size: f64) -> String {
    human_size_with_precision(size, 4)
}

/// `units.HumanDuration` for a duration in seconds (fractions allowed).
pub fn human_duration(secs: f64) -> String {
    let seconds = secs.trunc() as i64;
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = (secs / 60.0).trunc() as i64;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Go's Duration.Round(time.Hour) rounds halves away from zero.
    let hours = (secs / 3600.0).round() as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (secs / 3600.0).trunc() as i64 / 24 / 365)
}

/// Docker's CREATED column: `HumanDuration(now - created) + " ago"`.
pub fn ago(created: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    let d = (now - created).num_milliseconds() as f64 / 1000.0;
    format!("{} ago", human_duration(d))
}

/// Go's `time.Time.String()` in UTC, as docker's `CreatedAt` prints it:
/// `2024-01-10 12:00:00 +0000 UTC`.
pub fn go_time_string(t: chrono::DateTime<chrono::Utc>) -> String {
    let frac = t.timestamp_subsec_nanos();
    let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
    if frac == 0 {
        format!("{base} +0000 UTC")
    } else {
        let f = format!("{frac:09}");
        format!("{base}.{} +0000 UTC", f.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_go_units() {
        assert_eq!(human_size_with_precision(4_261_544.0, 3), "4.26MB");
        assert_eq!(human_size_with_precision(0.0, 3), "0B");
        assert_eq!(human_size_with_precision(999.0, 3), "999B");
        assert_eq!(human_size_with_precision(1000.0, 3), "1kB");
        assert_eq!(human_size_with_precision(999_900.0, 3), "1e+03kB");
        assert_eq!(human_size_with_precision(77_800_000.0, 3), "77.8MB");
        assert_eq!(human_size_with_precision(1_234_567_890.0, 3), "1.23GB");
        assert_eq!(human_size(1_234_567.0), "1.235MB");
        assert_eq!(human_size(2048.0), "2.048kB");
        assert_eq!(human_size(1e30), "1e+06YB");
    }

    #[test]
    fn durations_match_go_units() {
        assert_eq!(human_duration(0.4), "Less than a second");
        assert_eq!(human_duration(1.0), "1 second");
        assert_eq!(human_duration(59.9), "59 seconds");
        assert_eq!(human_duration(60.0), "About a minute");
        assert_eq!(human_duration(119.0), "About a minute");
        assert_eq!(human_duration(120.0), "2 minutes");
        assert_eq!(human_duration(3599.0), "59 minutes");
        assert_eq!(human_duration(3600.0), "About an hour");
        assert_eq!(human_duration(5399.0), "About an hour");
        assert_eq!(human_duration(5400.0), "2 hours");
        assert_eq!(human_duration(47.0 * 3600.0), "47 hours");
        assert_eq!(human_duration(48.0 * 3600.0), "2 days");
        assert_eq!(human_duration(13.0 * 86400.0), "13 days");
        assert_eq!(human_duration(14.0 * 86400.0), "2 weeks");
        assert_eq!(human_duration(60.0 * 86400.0), "2 months");
        assert_eq!(human_duration(365.0 * 2.0 * 86400.0), "2 years");
    }

    #[test]
    fn go_time_format() {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(go_time_string(t), "2023-11-14 22:13:20 +0000 UTC");
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 500_000_000).unwrap();
        assert_eq!(go_time_string(t), "2023-11-14 22:13:20.5 +0000 UTC");
    }
}
