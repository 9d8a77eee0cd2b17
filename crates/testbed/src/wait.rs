//! Waiting for the cluster to converge, with failures that say what it looked like.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::api::Api;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Polls one object until `done` holds and returns it. On timeout the error names what was
/// awaited and shows the object's status (or that it does not exist) and its recent events.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&K) -> bool,
) -> Result<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Serialize,
{
    let deadline = Instant::now() + timeout;
    let mut last_error: Option<String>;
    loop {
        match api.get_opt(name).await {
            Ok(Some(obj)) if done(&obj) => return Ok(obj),
            Ok(_) => last_error = None,
            Err(e) => last_error = Some(e.to_string()),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("{}", describe(api, name, what, timeout, last_error).await)
}

/// Polls until the object is gone.
pub async fn wait_for_absent<K>(api: &Api<K>, name: &str, timeout: Duration) -> Result<()>
where
    K: Resource + Clone + Debug + DeserializeOwned + Serialize,
{
    let deadline = Instant::now() + timeout;
    loop {
        if api.get_opt(name).await?.is_none() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let what = "it to be deleted";
            bail!("{}", describe(api, name, what, timeout, None).await)
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn describe<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    last_error: Option<String>,
) -> String
where
    K: Resource + Clone + Debug + DeserializeOwned + Serialize,
{
    let mut out = String::new();
    let obj = api.get_opt(name).await;
    let kind = match &obj {
        Ok(Some(o)) => o
            .meta()
            .namespace
            .clone()
            .map_or(name.to_string(), |ns| format!("{ns}/{name}")),
        _ => name.to_string(),
    };
    out.push_str(&format!(
        "timed out after {}s waiting for {what} ({kind})",
        timeout.as_secs()
    ));
    if let Some(e) = last_error {
        out.push_str(&format!("\n  last error: {e}"));
    }
    match obj {
        Ok(Some(o)) => {
            let status = serde_json::to_value(&o)
                .ok()
                .and_then(|v| v.get("status").cloned())
                .unwrap_or(serde_json::Value::Null);
            let text = serde_json::to_string_pretty(&status).unwrap_or_default();
            out.push_str("\n  status: ");
            out.push_str(&text.replace('\n', "\n  "));
            let ns = o.namespace().unwrap_or_default();
            match crate::recent_events(&api_client(api), &ns, name, 10).await {
                Ok(events) if events.is_empty() => out.push_str("\n  events: none"),
                Ok(events) => {
                    out.push_str("\n  events:");
                    for e in events {
                        out.push_str(&format!("\n    {e}"));
                    }
                }
                Err(e) => out.push_str(&format!("\n  events: could not list ({e})")),
            }
        }
        Ok(None) => out.push_str("\n  the object does not exist"),
        Err(e) => out.push_str(&format!("\n  could not read it: {e}")),
    }
    out
}

fn api_client<K: Resource + Clone>(api: &Api<K>) -> kube::Client {
    api.clone().into_client()
}
