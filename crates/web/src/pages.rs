//! Server-rendered pages (askama templates compiled into the binary).

use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};

use crate::AppState;

#[derive(Template)]
#[template(path = "index.html")]
struct Index<'a> {
    public_url: &'a str,
    version: &'a str,
}

pub async fn index(State(state): State<AppState>) -> Response {
    render(&Index {
        public_url: state.public_url.as_str(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

pub async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}
