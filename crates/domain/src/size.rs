//! Sizes for people.

/// Bytes as people read them: `0 B`, `12.3 kB`, `4.5 MB`, `1.2 GB` (powers of ten, as disks
/// and S3 providers count).
pub fn human_bytes(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    match b {
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_as_people_expect() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(-5), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(12_345), "12.3 kB");
        assert_eq!(human_bytes(4_500_000), "4.5 MB");
        assert_eq!(human_bytes(1_200_000_000), "1.2 GB");
    }
}
