//! The Greenhost "Cosmos" API: create the VPS ("droplet") and the DNS records of a cluster.
//!
//! Verified from public code: the base URL, Bearer authentication, and the DNS record
//! endpoints (`GET`/`POST /domains/{domain}/records`). The droplet endpoints follow the
//! DigitalOcean v2 shape the API is compatible with (`POST /droplets`, `GET /droplets`,
//! `GET /droplets/{id}`), which could not be checked against the live API from here.
//!
//! Every step looks before it creates (a droplet of the same name, a record with the same
//! name and type), so a create that failed half-way is simply run again: nothing is made
//! twice.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use crate::ProvisionError;

pub const DEFAULT_URL: &str = "https://service.greenhost.net/api/v2";

/// What to create: the seed's defaults for a Stackspin server.
#[derive(Debug, Clone)]
pub struct DropletSpec {
    pub hostname: String,
    pub ssh_key_id: u64,
    pub region: String,
    /// Memory in MiB (Cosmos sizes VPSs by memory).
    pub size_mib: u64,
    pub disk_gib: u64,
    pub image: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Droplet {
    pub id: u64,
    pub name: String,
    pub status: String,
    pub ip: Option<IpAddr>,
}

pub struct Cosmos {
    base: String,
    token: String,
    http: reqwest::Client,
    /// How often to look whether a new VPS runs, and for how long.
    pub poll: Duration,
    pub boot_timeout: Duration,
}

impl std::fmt::Debug for Cosmos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cosmos")
            .field("base", &self.base)
            .field("token", &"[redacted]")
            .finish()
    }
}

#[derive(Deserialize)]
struct RawDroplet {
    id: u64,
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    networks: Networks,
}

#[derive(Deserialize, Default)]
struct Networks {
    #[serde(default)]
    v4: Vec<Network>,
}

#[derive(Deserialize)]
struct Network {
    ip_address: String,
    #[serde(rename = "type", default)]
    kind: String,
}

impl From<RawDroplet> for Droplet {
    fn from(d: RawDroplet) -> Droplet {
        let ip = d
            .networks
            .v4
            .iter()
            .find(|n| n.kind == "public" || n.kind.is_empty())
            .and_then(|n| n.ip_address.parse().ok());
        Droplet {
            id: d.id,
            name: d.name,
            status: d.status,
            ip,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Record {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub data: String,
}

impl Cosmos {
    /// `token` from `COSMOS_API_TOKEN`; `base` from `COSMOS_API_URL`, else Greenhost's.
    pub fn new(base: Option<&str>, token: &str) -> Result<Cosmos, ProvisionError> {
        if token.trim().is_empty() {
            return Err(ProvisionError::Input(
                "COSMOS_API_TOKEN is empty: create an API key with Customer rights in the Cosmos Service Centre and export it".into(),
            ));
        }
        let base = base
            .unwrap_or(DEFAULT_URL)
            .trim_end_matches('/')
            .to_string();
        let parsed = url::Url::parse(&base)
            .map_err(|e| ProvisionError::Input(format!("COSMOS_API_URL {base:?}: {e}")))?;
        // The token is a bearer credential: plain HTTP only to this machine (a stand-in).
        let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
            return Err(ProvisionError::Input(format!(
                "COSMOS_API_URL {base:?} must be https:// (the API token would travel in the clear)"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ProvisionError::Provider(format!("HTTP client: {e}")))?;
        Ok(Cosmos {
            base,
            token: token.trim().to_string(),
            http,
            poll: Duration::from_secs(5),
            boot_timeout: Duration::from_secs(600),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(reqwest::StatusCode, serde_json::Value), ProvisionError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            ProvisionError::Provider(format!("{method} {path}: cannot reach the Cosmos API: {e}"))
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ProvisionError::Provider(format!(
                "the Cosmos API refused COSMOS_API_TOKEN ({status}): check that the key exists and has Customer rights"
            )));
        }
        Ok((status, value))
    }

    fn unexpected(
        what: &str,
        status: reqwest::StatusCode,
        body: &serde_json::Value,
    ) -> ProvisionError {
        let detail = body
            .get("message")
            .or_else(|| body.get("error"))
            .and_then(|m| m.as_str())
            .unwrap_or("");
        ProvisionError::Provider(
            format!("{what}: the Cosmos API answered {status} {detail}")
                .trim_end()
                .to_string(),
        )
    }

    /// Whether the DNS zone `domain` is in the account.
    pub async fn records(&self, domain: &str) -> Result<Vec<Record>, ProvisionError> {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/domains/{domain}/records"),
                None,
            )
            .await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ProvisionError::Provider(format!(
                "the domain {domain} is not in your Cosmos account: add it there, or create the DNS records yourself and leave out --create-domain-records"
            )));
        }
        if !status.is_success() {
            return Err(Self::unexpected(
                &format!("reading the records of {domain}"),
                status,
                &body,
            ));
        }
        serde_json::from_value(body["domain_records"].clone()).map_err(|e| {
            ProvisionError::Provider(format!("records of {domain}: unexpected answer: {e}"))
        })
    }

    pub async fn droplets(&self) -> Result<Vec<Droplet>, ProvisionError> {
        let (status, body) = self.call(reqwest::Method::GET, "/droplets", None).await?;
        if !status.is_success() {
            return Err(Self::unexpected("listing the VPSs", status, &body));
        }
        let raw: Vec<RawDroplet> = serde_json::from_value(body["droplets"].clone())
            .map_err(|e| ProvisionError::Provider(format!("VPS list: unexpected answer: {e}")))?;
        Ok(raw.into_iter().map(Droplet::from).collect())
    }

    pub async fn droplet(&self, id: u64) -> Result<Droplet, ProvisionError> {
        let (status, body) = self
            .call(reqwest::Method::GET, &format!("/droplets/{id}"), None)
            .await?;
        if !status.is_success() {
            return Err(Self::unexpected(
                &format!("reading VPS {id}"),
                status,
                &body,
            ));
        }
        let raw: RawDroplet = serde_json::from_value(body["droplet"].clone())
            .map_err(|e| ProvisionError::Provider(format!("VPS {id}: unexpected answer: {e}")))?;
        Ok(raw.into())
    }

    /// The VPS named `spec.hostname`: the existing one (from an earlier, interrupted create),
    /// or a new one. Returns it and whether it was made now.
    pub async fn find_or_create(
        &self,
        spec: &DropletSpec,
    ) -> Result<(Droplet, bool), ProvisionError> {
        if let Some(d) = self
            .droplets()
            .await?
            .into_iter()
            .find(|d| d.name == spec.hostname)
        {
            return Ok((d, false));
        }
        let body = json!({
            "name": spec.hostname,
            "ssh_keys": [spec.ssh_key_id],
            "region": spec.region,
            "size": spec.size_mib,
            "disk": spec.disk_gib,
            "image": spec.image,
        });
        let (status, answer) = self
            .call(reqwest::Method::POST, "/droplets", Some(body))
            .await?;
        if !status.is_success() {
            return Err(Self::unexpected(
                &format!("creating the VPS {}", spec.hostname),
                status,
                &answer,
            ));
        }
        let raw: RawDroplet = serde_json::from_value(answer["droplet"].clone()).map_err(|e| {
            ProvisionError::Provider(format!("creating the VPS: unexpected answer: {e}"))
        })?;
        Ok((raw.into(), true))
    }

    /// Waits until the VPS runs and has a public address.
    pub async fn wait_running(
        &self,
        id: u64,
        mut progress: impl FnMut(&Droplet),
    ) -> Result<(Droplet, IpAddr), ProvisionError> {
        let start = Instant::now();
        loop {
            let d = self.droplet(id).await?;
            progress(&d);
            if d.status == "running"
                && let Some(ip) = d.ip
            {
                return Ok((d, ip));
            }
            if start.elapsed() > self.boot_timeout {
                return Err(ProvisionError::Provider(format!(
                    "VPS {} (id {id}) is still {:?} after {} s",
                    d.name,
                    d.status,
                    self.boot_timeout.as_secs()
                )));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Makes sure a record exists; a record of the same name and type with other data is an
    /// error (it is the admin's, and changing DNS silently could take a site down).
    pub async fn ensure_record(
        &self,
        domain: &str,
        existing: &[Record],
        kind: &str,
        name: &str,
        data: &str,
    ) -> Result<bool, ProvisionError> {
        if let Some(r) = existing.iter().find(|r| r.kind == kind && r.name == name) {
            if r.data.trim_end_matches('.') == data.trim_end_matches('.') {
                return Ok(false);
            }
            return Err(ProvisionError::Provider(format!(
                "{domain} already has a {kind} record {name:?} pointing at {}; change or remove it in Cosmos and run create again",
                r.data
            )));
        }
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/domains/{domain}/records"),
                Some(json!({"type": kind, "name": name, "data": data, "ttl": 3600})),
            )
            .await?;
        if !status.is_success() {
            return Err(Self::unexpected(
                &format!("creating the {kind} record {name:?} in {domain}"),
                status,
                &body,
            ));
        }
        Ok(true)
    }
}
