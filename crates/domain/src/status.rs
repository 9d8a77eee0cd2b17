//! What the Status page shows of the cluster: nodes and certificates as the operator saw
//! them, and the rules that judge them. Data only; the operator reads Kubernetes, the web
//! layer shows these.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One node: its size, what it uses when metrics-server reports it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub ready: bool,
    /// Conditions that mean trouble, by name (MemoryPressure, DiskPressure, PIDPressure,
    /// NetworkUnavailable), and NotReady with its message.
    pub problems: Vec<String>,
    pub cpu_cores: f64,
    pub memory_bytes: u64,
    /// The node's local disk for pods and volumes (ephemeral-storage capacity).
    pub disk_bytes: u64,
    pub cpu_used_cores: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    /// The root filesystem as node-exporter reports it through Prometheus, when monitoring
    /// runs (metrics-server does not report disks).
    #[serde(default)]
    pub disk: Option<DiskUsage>,
}

/// A node's root filesystem: its size and what is still free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    pub size_bytes: u64,
    pub available_bytes: u64,
}

/// From this share of a full disk on, a node's disk is a problem to act on: the alerting rule
/// StackspinDiskFillingUp fires at the same point (less than 10% free).
pub const DISK_FULL_WARNING: f64 = 0.90;

impl NodeStatus {
    /// Share of memory in use, when known.
    pub fn memory_used_share(&self) -> Option<f64> {
        let used = self.memory_used_bytes? as f64;
        (self.memory_bytes > 0).then(|| used / self.memory_bytes as f64)
    }

    /// Share of the root filesystem in use, when known.
    pub fn disk_used_share(&self) -> Option<f64> {
        let d = self.disk?;
        (d.size_bytes > 0)
            .then(|| 1.0 - d.available_bytes.min(d.size_bytes) as f64 / d.size_bytes as f64)
    }

    pub fn cpu_used_share(&self) -> Option<f64> {
        let used = self.cpu_used_cores?;
        (self.cpu_cores > 0.0).then(|| used / self.cpu_cores)
    }
}

/// One TLS certificate cert-manager manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateStatus {
    pub namespace: String,
    pub name: String,
    pub hosts: Vec<String>,
    pub ready: bool,
    pub not_after: Option<DateTime<Utc>>,
    /// Why it is not ready: cert-manager's message and, for an ACME order in progress or
    /// failed, each challenge's state and reason.
    pub problem: Option<String>,
}

/// How a certificate stands for people: the rule the Status page, the API and `stackspin
/// test` share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateVerdict {
    Valid,
    /// Valid, but expires within [`EXPIRY_WARNING_DAYS`].
    Expiring,
    Expired,
    NotIssued,
}

/// cert-manager renews 30 days ahead; under 14 days left means renewal is failing.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

impl CertificateStatus {
    pub fn verdict(&self, now: DateTime<Utc>) -> CertificateVerdict {
        match self.not_after {
            Some(t) if t <= now => CertificateVerdict::Expired,
            Some(t) if self.ready && t - now < chrono::Duration::days(EXPIRY_WARNING_DAYS) => {
                CertificateVerdict::Expiring
            }
            Some(_) if self.ready => CertificateVerdict::Valid,
            _ => CertificateVerdict::NotIssued,
        }
    }
}

/// Parses a Kubernetes resource quantity ("3900m", "16318124Ki", "100Gi", "2", "1e3") into
/// its value in base units (cores, bytes). `None` for anything else.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = q.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    q.parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_use_is_a_share_of_the_filesystem() {
        let mut n: NodeStatus = serde_json::from_value(serde_json::json!({
            "name": "n", "ready": true, "problems": [], "cpu_cores": 2.0,
            "memory_bytes": 1, "disk_bytes": 1, "cpu_used_cores": null,
            "memory_used_bytes": null
        }))
        .unwrap();
        // Observations stored before disks were read have no disk: unknown.
        assert_eq!(n.disk_used_share(), None);
        n.disk = Some(DiskUsage {
            size_bytes: 200,
            available_bytes: 50,
        });
        assert_eq!(n.disk_used_share(), Some(0.75));
        n.disk = Some(DiskUsage {
            size_bytes: 0,
            available_bytes: 0,
        });
        assert_eq!(n.disk_used_share(), None);
    }

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("3900m"), Some(3.9));
        assert_eq!(parse_quantity("16Ki"), Some(16384.0));
        assert_eq!(parse_quantity("100Gi"), Some(107_374_182_400.0));
        assert!((parse_quantity("250n").unwrap() - 250e-9).abs() < 1e-15);
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("5G"), Some(5e9));
        assert_eq!(parse_quantity("lots"), None);
        assert_eq!(parse_quantity("Gi"), None);
    }

    #[test]
    fn certificates_are_judged_by_readiness_and_time_left() {
        let now = Utc::now();
        let cert = |ready, days: Option<i64>| CertificateStatus {
            namespace: "stackspin".into(),
            name: "chat".into(),
            hosts: vec!["chat.example.org".into()],
            ready,
            not_after: days.map(|d| now + chrono::Duration::days(d)),
            problem: None,
        };
        assert_eq!(cert(true, Some(60)).verdict(now), CertificateVerdict::Valid);
        assert_eq!(
            cert(true, Some(10)).verdict(now),
            CertificateVerdict::Expiring
        );
        assert_eq!(
            cert(false, Some(-1)).verdict(now),
            CertificateVerdict::Expired
        );
        assert_eq!(
            cert(false, None).verdict(now),
            CertificateVerdict::NotIssued
        );
        // Renewal failing on a still-valid certificate: not ready, but the old one serves.
        assert_eq!(
            cert(false, Some(20)).verdict(now),
            CertificateVerdict::NotIssued
        );
    }
}
