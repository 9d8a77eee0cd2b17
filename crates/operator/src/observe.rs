//! What the Status page shows of the cluster, read by the operator (the web layer never talks
//! to Kubernetes) and stored as observations: nodes with their size, usage and conditions,
//! and cert-manager's certificates with, for one not issued, why (its ACME challenges'
//! states and reasons, which the seed's troubleshooting chapter dug out with five `kubectl`
//! commands).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;
use stackspin_domain::status::{
    CertificateStatus, DISK_FULL_WARNING, DiskUsage, NodeStatus, parse_quantity,
};
use stackspin_platform::desired::{APPS_NAMESPACE, CORE_NAMESPACE};

use crate::{Operator, OperatorError};

/// Observation kinds in the database.
pub const NODES: &str = "nodes";
pub const CERTIFICATES: &str = "certificates";
/// The catalog entry whose Prometheus holds node-exporter's disk figures.
const MONITORING_APP: &str = "monitoring";

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Whether an error means the kind is not served (its CRD or API is not installed).
fn not_served(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn quantity(v: &Value) -> Option<f64> {
    v.as_str().and_then(parse_quantity)
}

fn to_u64(f: f64) -> u64 {
    // Sizes are far below 2^53, where f64 is exact.
    if f.is_finite() && f > 0.0 {
        f as u64
    } else {
        0
    }
}

/// Every node, with usage from metrics-server when it answers.
pub async fn nodes(client: &Client) -> Result<Vec<NodeStatus>, OperatorError> {
    let api: Api<Node> = Api::all(client.clone());
    let metrics: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes"),
    );
    // metrics-server is optional (k3s runs it; a cluster may not): usage is then unknown.
    let usage = match metrics.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => {
            if !not_served(&e) {
                tracing::debug!(error = %e, "node usage unavailable");
            }
            Vec::new()
        }
    };
    let mut out = Vec::new();
    for node in api.list(&ListParams::default()).await?.items {
        let name = node.metadata.name.clone().unwrap_or_default();
        let status = node.status.unwrap_or_default();
        let capacity = status.capacity.unwrap_or_default();
        let cap = |key: &str| {
            capacity
                .get(key)
                .and_then(|q| parse_quantity(&q.0))
                .unwrap_or(0.0)
        };
        let mut ready = false;
        let mut problems = Vec::new();
        for c in status.conditions.unwrap_or_default() {
            match (c.type_.as_str(), c.status.as_str()) {
                ("Ready", "True") => ready = true,
                ("Ready", _) => problems.push(match c.message.as_deref() {
                    Some(m) if !m.is_empty() => format!("NotReady: {m}"),
                    _ => "NotReady".to_string(),
                }),
                (kind, "True") => problems.push(kind.to_string()),
                _ => {}
            }
        }
        let used = usage
            .iter()
            .find(|m| m.metadata.name.as_deref() == Some(name.as_str()))
            .map(|m| &m.data["usage"]);
        out.push(NodeStatus {
            ready,
            problems,
            cpu_cores: cap("cpu"),
            memory_bytes: to_u64(cap("memory")),
            disk_bytes: to_u64(cap("ephemeral-storage")),
            cpu_used_cores: used.and_then(|u| quantity(&u["cpu"])),
            memory_used_bytes: used.and_then(|u| quantity(&u["memory"])).map(to_u64),
            disk: None,
            name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Each node's root filesystem (size and free space), by node name, from node-exporter
/// through Prometheus's query API. node-exporter's `instance` is its pod's address, so the
/// node is named by `node_uname_info`'s `nodename` (k3s names a node after its host name).
pub async fn disks(
    http: &reqwest::Client,
    prometheus: &str,
) -> Result<BTreeMap<String, DiskUsage>, String> {
    let query = |metric: &str| {
        format!(
            "max by (nodename) ({metric}{{mountpoint=\"/\",fstype!~\"tmpfs|overlay|squashfs\"}} \
             * on(instance) group_left(nodename) node_uname_info)"
        )
    };
    let size = prometheus_vector(http, prometheus, &query("node_filesystem_size_bytes")).await?;
    let free = prometheus_vector(http, prometheus, &query("node_filesystem_avail_bytes")).await?;
    Ok(size
        .into_iter()
        .filter_map(|(node, size)| {
            let available = *free.get(&node)?;
            Some((
                node,
                DiskUsage {
                    size_bytes: to_u64(size),
                    available_bytes: to_u64(available),
                },
            ))
        })
        .collect())
}

/// An instant query's result by `nodename`.
async fn prometheus_vector(
    http: &reqwest::Client,
    prometheus: &str,
    query: &str,
) -> Result<BTreeMap<String, f64>, String> {
    let url = format!("{}/api/v1/query", prometheus.trim_end_matches('/'));
    let answer: serde_json::Value = http
        .get(&url)
        .query(&[("query", query)])
        .send()
        .await
        .map_err(|e| format!("Prometheus did not answer at {prometheus}: {e}"))?
        .error_for_status()
        .map_err(|e| format!("Prometheus refused the query: {e}"))?
        .json()
        .await
        .map_err(|e| format!("Prometheus answered something else than JSON: {e}"))?;
    if answer["status"] != "success" {
        return Err(format!(
            "Prometheus could not run the query: {}",
            answer["error"].as_str().unwrap_or("no reason given")
        ));
    }
    Ok(answer["data"]["result"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| {
                    let node = r["metric"]["nodename"].as_str()?.to_string();
                    let value = r["value"][1].as_str()?.parse::<f64>().ok()?;
                    Some((node, value))
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Certificates in the namespaces Stackspin manages; empty when cert-manager is absent.
pub async fn certificates(client: &Client) -> Result<Vec<CertificateStatus>, OperatorError> {
    let mut out = Vec::new();
    for ns in [CORE_NAMESPACE, APPS_NAMESPACE] {
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            ns,
            &resource("cert-manager.io", "v1", "Certificate", "certificates"),
        );
        let certs = match api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) if not_served(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut challenges: Option<Vec<DynamicObject>> = None;
        for c in certs {
            let hosts: Vec<String> = c.data["spec"]["dnsNames"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|h| h.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let conditions = c.data["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let condition = |kind: &str| conditions.iter().find(|x| x["type"] == kind).cloned();
            let ready = condition("Ready").is_some_and(|r| r["status"] == "True");
            let not_after = c.data["status"]["notAfter"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            let mut problem = None;
            if !ready {
                let mut why: Vec<String> = Vec::new();
                for kind in ["Ready", "Issuing"] {
                    if let Some(m) =
                        condition(kind).and_then(|x| x["message"].as_str().map(str::to_string))
                        && !m.is_empty()
                        && !why.contains(&m)
                    {
                        why.push(m);
                    }
                }
                // The ACME challenges for its hosts say what Let's Encrypt saw.
                if challenges.is_none() {
                    let api: Api<DynamicObject> = Api::namespaced_with(
                        client.clone(),
                        ns,
                        &resource("acme.cert-manager.io", "v1", "Challenge", "challenges"),
                    );
                    challenges = Some(match api.list(&ListParams::default()).await {
                        Ok(l) => l.items,
                        Err(e) if not_served(&e) => Vec::new(),
                        Err(e) => return Err(e.into()),
                    });
                }
                for ch in challenges.iter().flatten() {
                    let host = ch.data["spec"]["dnsName"].as_str().unwrap_or_default();
                    if !hosts.iter().any(|h| h == host) {
                        continue;
                    }
                    let state = ch.data["status"]["state"].as_str().unwrap_or("pending");
                    let reason = ch.data["status"]["reason"].as_str().unwrap_or_default();
                    let kind = ch.data["spec"]["type"].as_str().unwrap_or("ACME");
                    why.push(if reason.is_empty() {
                        format!("{kind} challenge for {host} is {state}")
                    } else {
                        format!("{kind} challenge for {host} is {state}: {reason}")
                    });
                }
                if why.is_empty() {
                    why.push("cert-manager has not issued it yet".into());
                }
                problem = Some(why.join("; "));
            }
            out.push(CertificateStatus {
                namespace: ns.to_string(),
                name: c.metadata.name.clone().unwrap_or_default(),
                hosts,
                ready,
                not_after,
                problem,
            });
        }
    }
    Ok(out)
}

impl Operator {
    /// Where Prometheus answers queries: the setting, else, once the monitoring app is
    /// installed, the Service the Prometheus Operator makes for every Prometheus it runs.
    async fn prometheus_url(&self) -> Option<String> {
        if let Some(url) = &self.settings.prometheus_url {
            return Some(url.clone());
        }
        self.store.installed_app(MONITORING_APP).await.ok()??;
        Some(format!(
            "http://prometheus-operated.{CORE_NAMESPACE}.svc:9090"
        ))
    }

    /// Reads nodes and certificates and stores them for the Status page.
    pub async fn observe_cluster(&self) -> Result<(), OperatorError> {
        let now = (self.clock)();
        let mut nodes = nodes(&self.client).await?;
        if let Some(prometheus) = self.prometheus_url().await {
            match disks(&self.http, &prometheus).await {
                Ok(found) => {
                    for n in &mut nodes {
                        n.disk = found.get(&n.name).copied();
                        if let Some(share) = n.disk_used_share()
                            && share >= DISK_FULL_WARNING
                        {
                            n.problems
                                .push(format!("disk {:.0}% full", (share * 100.0).floor()));
                        }
                    }
                }
                // Monitoring may be installing or down; disk usage is then unknown, and the
                // Status page says so, while nodes and certificates are still recorded.
                Err(e) => tracing::debug!(error = %e, "disk usage unavailable"),
            }
        }
        let certificates = certificates(&self.client).await?;
        self.store
            .record_observation(
                NODES,
                &serde_json::to_value(&nodes).unwrap_or_default(),
                now,
            )
            .await?;
        self.store
            .record_observation(
                CERTIFICATES,
                &serde_json::to_value(&certificates).unwrap_or_default(),
                now,
            )
            .await?;
        Ok(())
    }
}
