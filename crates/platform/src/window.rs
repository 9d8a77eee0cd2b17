//! The maintenance window: when new chart versions may be taken. Pure: the caller passes the
//! time of day in the cluster's time zone, so every decision is testable.

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveTime, Timelike};

/// A daily window `HH:MM-HH:MM`; it may wrap past midnight (`23:00-01:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: u16,
    end: u16,
}

impl Default for Window {
    /// 02:00-04:00, as the seed's nightly updates.
    fn default() -> Self {
        Window {
            start: 2 * 60,
            end: 4 * 60,
        }
    }
}

impl Window {
    /// Whether `t` (local time of day) is inside the window; the end is excluded.
    pub fn contains(&self, t: NaiveTime) -> bool {
        let m = (t.hour() * 60 + t.minute()) as u16;
        if self.start <= self.end {
            self.start <= m && m < self.end
        } else {
            m >= self.start || m < self.end
        }
    }
}

fn parse_hm(s: &str) -> Result<u16, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not HH:MM"))?;
    let h: u16 = h.parse().map_err(|_| format!("{s:?} is not HH:MM"))?;
    let m: u16 = m.parse().map_err(|_| format!("{s:?} is not HH:MM"))?;
    if h > 23 || m > 59 {
        return Err(format!("{s:?} is not a time of day"));
    }
    Ok(h * 60 + m)
}

impl FromStr for Window {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not a window like 02:00-04:00"))?;
        let (start, end) = (parse_hm(a.trim())?, parse_hm(b.trim())?);
        if start == end {
            return Err(format!("{s:?} is empty"));
        }
        Ok(Window { start, end })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).expect("valid")
    }

    #[test]
    fn the_default_is_two_to_four() {
        let w = Window::default();
        assert!(!w.contains(t(1, 59)));
        assert!(w.contains(t(2, 0)));
        assert!(w.contains(t(3, 59)));
        assert!(!w.contains(t(4, 0)));
    }

    #[test]
    fn windows_may_wrap_past_midnight() {
        let w: Window = "23:30-00:30".parse().expect("valid");
        assert!(w.contains(t(23, 45)));
        assert!(w.contains(t(0, 10)));
        assert!(!w.contains(t(12, 0)));
        assert_eq!(w.to_string(), "23:30-00:30");
    }

    #[test]
    fn bad_windows_are_refused() {
        for bad in [
            "",
            "2-4",
            "02:00",
            "24:00-01:00",
            "02:60-03:00",
            "02:00-02:00",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad}");
        }
    }
}
