//! The server side of `stackspin install` over SSH: what the server must have (checked before
//! anything is changed), k3s at a pinned version with a config file, and the kubeconfig
//! brought home with its address rewritten.

use std::net::IpAddr;

use stackspin_catalog::Catalog;
use stackspin_platform::ClusterConfig;

use crate::ProvisionError;
use crate::install::Check;

/// The k3s release installed: the newest stable one when this was written (platform.md).
pub const K3S_VERSION: &str = "v1.35.8+k3s1";
/// What the seed asked for (Debian, 25 GB of disk); k3s itself needs 2 cores.
pub const MIN_CORES: u64 = 2;
pub const MIN_DISK_GIB: u64 = 25;
/// Memory for k3s and the system, besides what the apps request.
pub const BASE_MEMORY_MIB: u64 = 2048;

/// Prints `key=value` lines the preflight reads. POSIX sh and coreutils only.
pub const FACTS_SCRIPT: &str = r#"
. /etc/os-release 2>/dev/null
echo "os_id=${ID:-unknown}"
echo "os_version=${VERSION_ID:-unknown}"
echo "cores=$(nproc 2>/dev/null || echo 0)"
echo "memory_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)"
echo "disk_kib=$(stat -f -c '%a %S' / 2>/dev/null | awk '{print int($1 * $2 / 1024)}')"
echo "listening=$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == "0A" {split($2, a, ":"); print a[2]}' | sort -u | tr '\n' ' ')"
echo "k3s=$(k3s --version 2>/dev/null | head -n 1)"
"#;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub os_id: String,
    pub os_version: String,
    pub cores: u64,
    pub memory_kib: u64,
    pub disk_kib: u64,
    /// TCP ports something listens on.
    pub listening: Vec<u16>,
    /// `k3s --version`'s first line, when k3s is there.
    pub k3s: Option<String>,
}

pub fn parse_facts(text: &str) -> Facts {
    let mut f = Facts::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k {
            "os_id" => f.os_id = v.to_string(),
            "os_version" => f.os_version = v.to_string(),
            "cores" => f.cores = v.parse().unwrap_or(0),
            "memory_kib" => f.memory_kib = v.parse().unwrap_or(0),
            "disk_kib" => f.disk_kib = v.parse().unwrap_or(0),
            // /proc/net/tcp gives ports in hex.
            "listening" => {
                f.listening = v
                    .split_whitespace()
                    .filter_map(|p| u16::from_str_radix(p, 16).ok())
                    .collect()
            }
            "k3s" if !v.is_empty() => f.k3s = Some(v.to_string()),
            _ => {}
        }
    }
    f.listening.sort_unstable();
    f.listening.dedup();
    f
}

/// The memory the platform and the chosen apps ask for, in MiB.
pub fn needed_memory_mib(catalog: &Catalog, config: &ClusterConfig) -> Result<u64, ProvisionError> {
    let mut mib = BASE_MEMORY_MIB;
    for p in stackspin_platform::placements(catalog, config)? {
        mib += quantity_mib(&p.entry.requests.memory);
    }
    Ok(mib)
}

/// A Kubernetes memory quantity (`512Mi`, `1Gi`, `64M`) in MiB, rounded up.
fn quantity_mib(q: &str) -> u64 {
    let digits: String = q.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u64 = digits.parse().unwrap_or(0);
    match &q[digits.len()..] {
        "Gi" => n * 1024,
        "G" => n * 1000 * 1000 * 1000 / (1024 * 1024),
        "Mi" => n,
        "M" => (n * 1000 * 1000).div_ceil(1024 * 1024),
        "Ki" => n.div_ceil(1024),
        _ => n.div_ceil(1024 * 1024),
    }
}

/// The server against the requirements; each a pass/fail line. A k3s this installer put
/// there (at the pinned version) explains its own ports, so a re-run passes.
pub fn evaluate(f: &Facts, needed_mib: u64) -> Vec<Check> {
    let ours = f.k3s.as_deref().is_some_and(|v| v.contains(K3S_VERSION));
    let mut checks = vec![
        Check {
            ok: f.os_id == "debian" && f.os_version == "12",
            what: "Debian 12".into(),
            found: format!("{} {}", f.os_id, f.os_version),
        },
        Check {
            ok: f.cores >= MIN_CORES,
            what: format!("{MIN_CORES} or more cores"),
            found: f.cores.to_string(),
        },
        Check {
            ok: f.memory_kib / 1024 >= needed_mib,
            what: format!("{} MiB of memory for k3s and the chosen apps", needed_mib),
            found: format!("{} MiB", f.memory_kib / 1024),
        },
        Check {
            ok: f.disk_kib / (1024 * 1024) >= MIN_DISK_GIB,
            what: format!("{MIN_DISK_GIB} GiB of free disk"),
            found: format!("{} GiB", f.disk_kib / (1024 * 1024)),
        },
    ];
    for port in [80u16, 443, 6443] {
        let taken = f.listening.contains(&port);
        checks.push(Check {
            ok: !taken || ours,
            what: format!("port {port} free"),
            found: if !taken {
                "free".into()
            } else if ours {
                "k3s (installed before)".into()
            } else {
                "in use".into()
            },
        });
    }
    checks
}

/// The domain and a name under it (the apps' wildcard) resolve to the server: the seed's
/// "make sure ping shows your IP". `resolve` is the system resolver, or a test's stand-in.
pub async fn dns_checks<F, Fut>(domain: &str, ip: IpAddr, resolve: F) -> Vec<Check>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<IpAddr>, String>>,
{
    let mut checks = Vec::new();
    for (what, name) in [
        (format!("{domain} resolves to {ip}"), domain.to_string()),
        (
            format!("*.{domain} resolves to {ip}"),
            format!("stackspin-wildcard-check.{domain}"),
        ),
    ] {
        let (ok, found) = match resolve(name).await {
            Ok(addrs) if addrs.contains(&ip) => (true, ip.to_string()),
            Ok(addrs) if addrs.is_empty() => (false, "no address".to_string()),
            Ok(addrs) => (
                false,
                addrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Err(e) => (false, e),
        };
        checks.push(Check { ok, what, found });
    }
    checks
}

/// The system resolver.
pub async fn system_resolve(name: String) -> Result<Vec<IpAddr>, String> {
    match tokio::net::lookup_host((name.as_str(), 443)).await {
        Ok(addrs) => Ok(addrs.map(|a| a.ip()).collect()),
        Err(e) => Err(format!("does not resolve ({e})")),
    }
}

/// k3s's config file: the server's address and domain in the API certificate, the kubeconfig
/// readable by root only. Traefik and local-path storage stay on: the platform uses them.
pub fn k3s_config(config: &ClusterConfig) -> String {
    format!(
        "# Written by `stackspin install`; it is replaced on every run.\n\
         write-kubeconfig-mode: \"0600\"\n\
         tls-san:\n  - \"{}\"\n  - \"{}\"\n\
         node-label:\n  - \"stackspin.net/node=server\"\n",
        config.ip_address, config.domain
    )
}

/// The script that installs k3s (or finds it there at the pinned version) and waits until it
/// wrote its kubeconfig. The config file carries no secrets.
pub fn install_script(config: &ClusterConfig) -> String {
    format!(
        r#"set -e
mkdir -p /etc/rancher/k3s
cat > /etc/rancher/k3s/config.yaml.new <<'STACKSPIN_EOF'
{cfg}STACKSPIN_EOF
mv /etc/rancher/k3s/config.yaml.new /etc/rancher/k3s/config.yaml
if k3s --version 2>/dev/null | grep -q '{v}'; then
  echo "k3s {v} is installed"
else
  # Downloaded first: in a pipe, a failed download would look like a finished install.
  curl -sfL https://get.k3s.io -o /tmp/stackspin-k3s-install.sh
  INSTALL_K3S_VERSION='{v}' sh /tmp/stackspin-k3s-install.sh server
  rm -f /tmp/stackspin-k3s-install.sh
  k3s --version 2>/dev/null | grep -q '{v}' || {{ echo "k3s {v} is not there after its install script" >&2; exit 1; }}
fi
i=0
while [ ! -s /etc/rancher/k3s/k3s.yaml ]; do
  i=$((i + 1)); [ "$i" -gt 300 ] && {{ echo "k3s wrote no kubeconfig in 300 s" >&2; exit 1; }}
  sleep 1
done
"#,
        cfg = k3s_config(config),
        v = K3S_VERSION
    )
}

/// Removes k3s and everything it held (the apps' volumes under /var/lib/rancher/k3s/storage):
/// the seed's "purge and install from scratch".
pub const PURGE_SCRIPT: &str = r#"set -e
if [ -x /usr/local/bin/k3s-uninstall.sh ]; then
  /usr/local/bin/k3s-uninstall.sh >/dev/null
  echo "k3s removed"
else
  echo "k3s was not installed"
fi
rm -rf /var/lib/rancher/k3s /etc/rancher/k3s
"#;

/// Joins this machine to the cluster at `server` as a k3s agent (or finds it joined). The
/// token reaches the machine in the script on stdin, never on a command line.
pub fn agent_script(server: IpAddr, token: &str) -> String {
    let host = match server {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    format!(
        r#"set -e
if k3s --version 2>/dev/null | grep -q '{v}'; then
  echo "k3s {v} is installed"
else
  curl -sfL https://get.k3s.io -o /tmp/stackspin-k3s-install.sh
  INSTALL_K3S_VERSION='{v}' K3S_URL='https://{host}:6443' K3S_TOKEN='{token}' sh /tmp/stackspin-k3s-install.sh agent
  rm -f /tmp/stackspin-k3s-install.sh
  k3s --version 2>/dev/null | grep -q '{v}' || {{ echo "k3s {v} is not there after its install script" >&2; exit 1; }}
fi
"#,
        v = K3S_VERSION,
        token = token.replace('\'', "")
    )
}

/// k3s's kubeconfig names the API at 127.0.0.1; from the admin's machine it is the server's
/// address, on the same port.
pub fn rewrite_kubeconfig(text: &str, ip: IpAddr) -> Result<String, ProvisionError> {
    let mut doc: serde_json::Value = serde_saphyr::from_str(text)
        .map_err(|e| ProvisionError::Cluster(format!("the server's kubeconfig: {e}")))?;
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let clusters = doc["clusters"]
        .as_array_mut()
        .ok_or_else(|| ProvisionError::Cluster("the server's kubeconfig has no clusters".into()))?;
    for c in clusters {
        let server = c["cluster"]["server"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut url = url::Url::parse(&server).map_err(|e| {
            ProvisionError::Cluster(format!("the server's kubeconfig names {server:?}: {e}"))
        })?;
        url.set_host(Some(&host))
            .map_err(|e| ProvisionError::Cluster(format!("kubeconfig address: {e}")))?;
        c["cluster"]["server"] =
            serde_json::Value::String(url.as_str().trim_end_matches('/').to_string());
    }
    serde_saphyr::to_string(&doc)
        .map_err(|e| ProvisionError::Cluster(format!("the kubeconfig: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FACTS: &str = "os_id=debian\nos_version=12\ncores=4\nmemory_kib=8000000\ndisk_kib=40000000\nlistening=16 50\nk3s=\n";

    #[test]
    fn facts_are_read_and_judged() {
        let f = parse_facts(FACTS);
        assert_eq!(f.listening, vec![22, 80]);
        let checks = evaluate(&f, 4096);
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.what.as_str())
            .collect();
        assert_eq!(failed, ["port 80 free"]);
        let small = parse_facts(&FACTS.replace("memory_kib=8000000", "memory_kib=1000000"));
        assert!(
            evaluate(&small, 4096)
                .iter()
                .any(|c| !c.ok && c.what.contains("memory"))
        );
        let ours = parse_facts(&format!("{FACTS}k3s=k3s version {K3S_VERSION} (abc)\n"));
        assert!(
            evaluate(&ours, 4096).iter().all(|c| c.ok),
            "a re-run passes"
        );
        let ubuntu = parse_facts(&FACTS.replace("debian", "ubuntu"));
        assert!(!evaluate(&ubuntu, 4096)[0].ok);
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity_mib("512Mi"), 512);
        assert_eq!(quantity_mib("1Gi"), 1024);
        assert_eq!(quantity_mib("64M"), 62);
    }

    #[test]
    fn the_kubeconfig_names_the_server() {
        let text = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: AAA\n    server: https://127.0.0.1:6443\n  name: default\n";
        let out = rewrite_kubeconfig(
            text,
            "192.0.2.10".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
        )
        .expect("rewrites");
        assert!(out.contains("server: https://192.0.2.10:6443"), "{out}");
        assert!(out.contains("certificate-authority-data: AAA"));
    }
}
