//! A stand-in for the Greenhost Cosmos API, served on loopback: the real one cannot be reached
//! from here. It implements what `stackspin create` calls, with the answers of the documented
//! API (DigitalOcean v2 shapes): Bearer tokens (401 for a wrong one), DNS zones and records
//! (404 for a zone not in the account), VPSs that take a few polls to boot, and a failure
//! that can be switched on for one record creation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub const TOKEN: &str = "fake-cosmos-token";

#[derive(Debug, Default)]
pub struct World {
    pub zones: BTreeMap<String, Vec<Value>>,
    pub droplets: Vec<Value>,
    /// Polls a new VPS answers "new" before it is "running".
    pub boot_polls: u32,
    polls: BTreeMap<u64, u32>,
    /// The next record creation fails with a 500 (then this turns itself off).
    pub fail_next_record: bool,
    pub droplets_created: u32,
    pub records_created: u32,
}

pub struct FakeCosmos {
    pub url: String,
    pub world: Arc<Mutex<World>>,
    _task: tokio::task::JoinHandle<()>,
}

type Shared = Arc<Mutex<World>>;

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

fn denied() -> (StatusCode, Json<Value>) {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"id": "unauthorized", "message": "Unable to authenticate you"})),
    )
}

async fn records(
    State(w): State<Shared>,
    Path(zone): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return denied();
    }
    let w = w.lock().unwrap_or_else(|e| e.into_inner());
    match w.zones.get(&zone) {
        Some(r) => (StatusCode::OK, Json(json!({"domain_records": r}))),
        None => (
            StatusCode::NOT_FOUND,
            Json(
                json!({"id": "not_found", "message": "The resource you were accessing could not be found."}),
            ),
        ),
    }
}

async fn add_record(
    State(w): State<Shared>,
    Path(zone): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return denied();
    }
    let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
    if w.fail_next_record {
        w.fail_next_record = false;
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"id": "server_error", "message": "Server Error"})),
        );
    }
    let id = 1000 + u64::from(w.records_created);
    let Some(list) = w.zones.get_mut(&zone) else {
        return (StatusCode::NOT_FOUND, Json(json!({"id": "not_found"})));
    };
    let mut record = body.clone();
    record["id"] = json!(id);
    list.push(record.clone());
    w.records_created += 1;
    (StatusCode::CREATED, Json(json!({"domain_record": record})))
}

async fn droplets(State(w): State<Shared>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return denied();
    }
    let w = w.lock().unwrap_or_else(|e| e.into_inner());
    (StatusCode::OK, Json(json!({"droplets": w.droplets})))
}

async fn create_droplet(
    State(w): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return denied();
    }
    let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
    for field in ["name", "ssh_keys", "region", "size", "disk", "image"] {
        if body.get(field).is_none() {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(
                    json!({"id": "unprocessable_entity", "message": format!("{field} is required")}),
                ),
            );
        }
    }
    w.droplets_created += 1;
    let id = 500 + u64::from(w.droplets_created);
    let droplet = json!({
        "id": id,
        "name": body["name"],
        "status": "new",
        "networks": {"v4": []},
    });
    w.droplets.push(droplet.clone());
    (StatusCode::ACCEPTED, Json(json!({"droplet": droplet})))
}

async fn droplet(
    State(w): State<Shared>,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return denied();
    }
    let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
    let boot = w.boot_polls;
    let polls = {
        let p = w.polls.entry(id).or_default();
        *p += 1;
        *p
    };
    let Some(d) = w.droplets.iter_mut().find(|d| d["id"] == json!(id)) else {
        return (StatusCode::NOT_FOUND, Json(json!({"id": "not_found"})));
    };
    if polls > boot && d["status"] != "running" {
        d["status"] = json!("running");
        // TEST-NET-3: documentation addresses, never routed.
        d["networks"] =
            json!({"v4": [{"ip_address": format!("203.0.113.{}", id % 250), "type": "public"}]});
    }
    (StatusCode::OK, Json(json!({"droplet": d.clone()})))
}

impl FakeCosmos {
    /// Serves on a free loopback port, with `zones` in the account.
    pub async fn start(zones: &[&str], boot_polls: u32) -> anyhow::Result<FakeCosmos> {
        let world = Arc::new(Mutex::new(World {
            zones: zones.iter().map(|z| (z.to_string(), Vec::new())).collect(),
            boot_polls,
            ..World::default()
        }));
        let app = Router::new()
            .route(
                "/api/v2/domains/{zone}/records",
                get(records).post(add_record),
            )
            .route("/api/v2/droplets", get(droplets).post(create_droplet))
            .route("/api/v2/droplets/{id}", get(droplet))
            .with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeCosmos {
            url: format!("http://{addr}/api/v2"),
            world,
            _task: task,
        })
    }

    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}
