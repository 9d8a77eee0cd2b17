//! The single sign-on checks of `stackspin test`: each app's client accepts an authorization
//! request through the app's own redirect address; with an admin API token, a throw-away
//! user signs in through it (and the app, where reachable, starts a session).

use std::net::SocketAddr;
use std::time::Duration;

use super::{Check, fail, pass};

/// A throw-away person for the sign-in checks, deleted when they are done.
pub(super) struct TestUser {
    id: String,
    pub(super) email: String,
    password: String,
}

fn api_error(v: &serde_json::Value, status: reqwest::StatusCode) -> String {
    v["message"]
        .as_str()
        .map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_string)
}

pub(super) async fn create_test_user(
    dashboard: &str,
    token: &str,
    domain: &str,
    apps: &[String],
) -> Result<TestUser, String> {
    let client = reqwest::Client::new();
    let tag = stackspin_domain::secret::random_chars(10).to_lowercase();
    let email = format!("stackspin-test-{tag}@{domain}");
    let password = stackspin_domain::secret::random_token(24);
    let roles: serde_json::Map<String, serde_json::Value> = apps
        .iter()
        .map(|a| (a.clone(), serde_json::json!("user")))
        .collect();
    let r = client
        .post(format!("{dashboard}/api/v1/users"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "email": email,
            "name": "Stackspin self-test",
            "password": password,
            "roles": roles,
        }))
        .send()
        .await
        .map_err(|e| format!("the Dashboard did not answer: {e}"))?;
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    if status != reqwest::StatusCode::CREATED {
        return Err(api_error(&v, status));
    }
    Ok(TestUser {
        id: v["id"].as_str().unwrap_or_default().to_string(),
        email,
        password,
    })
}

pub(super) async fn delete_test_user(
    dashboard: &str,
    token: &str,
    user: &TestUser,
) -> Result<(), String> {
    let url = format!("{dashboard}/api/v1/users/{}", user.id);
    admin_call(reqwest::Client::new().delete(url), token).await
}

/// Sends an admin API request and reads its refusal, if any, in the API's own words.
async fn admin_call(request: reqwest::RequestBuilder, token: &str) -> Result<(), String> {
    let r = request
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("the Dashboard did not answer: {e}"))?;
    let status = r.status();
    if status.is_success() {
        Ok(())
    } else {
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        Err(api_error(&v, status))
    }
}

/// A hidden form field's value on a page.
fn hidden(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    let end = tag[v..].find('"')? + v;
    Some(unescape(&tag[v..end]))
}

/// Undoes HTML escaping in an attribute value: the named entities and numeric ones in any
/// case (the Dashboard writes `&` as `&#38;`; other servers write `&amp;` or `&#x26;`).
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..end];
        let decoded = match name {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "lt" => Some('<'),
            "gt" => Some('>'),
            _ => name.strip_prefix('#').and_then(|n| {
                let code = match n.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => n.parse().ok(),
                };
                code.and_then(char::from_u32)
            }),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{}{location}", base.trim_end_matches('/'))
    } else {
        location.to_string()
    }
}

/// Signs in as the throw-away user through the app's authorization request, as a browser
/// would, and expects the provider to send a code back to the app's redirect address.
/// Returns that address with the code, for the app to be asked next.
pub(super) async fn sign_in_check(
    dashboard: &str,
    app: &str,
    redirect: &str,
    user: &TestUser,
) -> (Check, Option<String>) {
    let refused = |detail: String| {
        (
            fail(
                "sso",
                app,
                Some(app),
                detail,
                "the app's single sign-on client is missing, has another redirect address, or the test user has no access; install the app again so the operator registers it",
            ),
            None,
        )
    };
    let Ok(client) = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
    else {
        return refused("no HTTP client".into());
    };
    let Ok(mut url) =
        reqwest::Url::parse(&format!("{}/authorize", dashboard.trim_end_matches('/')))
    else {
        return refused(format!("{dashboard} is not an address"));
    };
    url.query_pairs_mut()
        .append_pair("client_id", app)
        .append_pair("redirect_uri", redirect)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile email")
        .append_pair("state", "stackspin-test")
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256");
    let mut next = url.to_string();
    let mut signed_in = false;
    // authorize → login page → sign in → authorize → back to the app: a handful of steps.
    for _ in 0..6 {
        let r = match client.get(&next).send().await {
            Ok(r) => r,
            Err(e) => return refused(format!("the Dashboard did not answer: {e}")),
        };
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(|l| absolute(dashboard, l));
        let body = r.text().await.unwrap_or_default();
        match location {
            Some(l) if l.starts_with(redirect) => {
                return if l.contains("code=") && l.contains("state=stackspin-test") {
                    (
                        pass(
                            "sso",
                            app,
                            Some(app),
                            format!(
                                "a throw-away user signed in; the provider sent a code to {redirect}"
                            ),
                        ),
                        Some(l),
                    )
                } else {
                    refused(format!("sent back without a code: {l}"))
                };
            }
            Some(l) if l.contains("/mfa") => {
                return (
                    fail(
                        "sso",
                        app,
                        Some(app),
                        "two-step verification is required for everyone, so a throw-away user cannot sign in".into(),
                        "run without --token for the client check only",
                    ),
                    None,
                );
            }
            Some(l) => next = l,
            None if status == 200 && body.contains("name=\"password\"") && !signed_in => {
                let (Some(csrf), Some(return_to)) =
                    (hidden(&body, "csrf"), hidden(&body, "return_to"))
                else {
                    return refused("the sign-in page has no form".into());
                };
                let r = client
                    .post(format!("{}/login", dashboard.trim_end_matches('/')))
                    .form(&[
                        ("email", user.email.as_str()),
                        ("password", user.password.as_str()),
                        ("csrf", csrf.as_str()),
                        ("return_to", return_to.as_str()),
                    ])
                    .send()
                    .await;
                signed_in = true;
                match r {
                    Ok(r) if r.status().is_redirection() => {
                        next = r
                            .headers()
                            .get("location")
                            .and_then(|l| l.to_str().ok())
                            .map(|l| absolute(dashboard, l))
                            .unwrap_or_default();
                    }
                    Ok(r) => {
                        let body = r.text().await.unwrap_or_default();
                        return refused(format!(
                            "the sign-in was refused: {}",
                            error_text(&body).unwrap_or_default()
                        ));
                    }
                    Err(e) => return refused(format!("the Dashboard did not answer: {e}")),
                }
            }
            None => {
                return refused(error_text(&body).unwrap_or_else(|| format!("HTTP {status}")));
            }
        }
    }
    refused("too many redirects".into())
}

/// Gives the code to the app at its redirect address, as the browser would: the app should
/// exchange it and start a session (a cookie), not show an error.
pub(super) async fn app_session_check(app: &str, callback: &str, ip: std::net::IpAddr) -> Check {
    let Ok(url) = reqwest::Url::parse(callback) else {
        return fail(
            "sso-app",
            app,
            Some(app),
            format!("bad address {callback}"),
            "report this",
        );
    };
    let host = url.host_str().unwrap_or_default().to_string();
    let Ok(client) = reqwest::Client::builder()
        .resolve(&host, SocketAddr::new(ip, 443))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
    else {
        return fail(
            "sso-app",
            app,
            Some(app),
            "no HTTPS client".into(),
            "report this",
        );
    };
    match client.get(url).send().await {
        Ok(r) if r.headers().contains_key("set-cookie") && r.status().as_u16() < 400 => pass(
            "sso-app",
            app,
            Some(app),
            format!("{app} accepted the sign-in and started a session"),
        ),
        Ok(r) => fail(
            "sso-app",
            app,
            Some(app),
            format!(
                "{app} answered HTTP {} without a session",
                r.status().as_u16()
            ),
            "the app could not redeem the code: its client secret or issuer setting is wrong; reinstall the app, and read its log",
        ),
        Err(e) => fail(
            "sso-app",
            app,
            Some(app),
            format!("{app} did not answer: {e}"),
            "see the release, pod and HTTPS checks above",
        ),
    }
}
/// Sends the app's authorization request (as the app would, to its own redirect address)
/// and expects the sign-in page, not an error from the identity provider.
pub(super) async fn sso_check(
    dashboard: &str,
    app: &str,
    client_id: &str,
    redirect: &str,
) -> Check {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build();
    let Ok(client) = client else {
        return fail(
            "sso",
            app,
            Some(app),
            "no HTTP client".into(),
            "report this",
        );
    };
    let url = format!("{}/authorize", dashboard.trim_end_matches('/'));
    let sent = client
        .get(&url)
        .query(&[
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "openid profile email"),
            ("state", "stackspin-test"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await;
    match sent {
        Err(e) => fail(
            "sso",
            app,
            Some(app),
            format!("the Dashboard did not answer: {e}"),
            "check the Dashboard's own release and certificate above",
        ),
        Ok(r) => {
            let status = r.status().as_u16();
            let location = r
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = r.text().await.unwrap_or_default();
            // Signed out, the provider asks for a sign-in: the client and its redirect
            // address are known. An error page or an error sent back means refused.
            let login = (status == 200 && body.contains("name=\"password\""))
                || ((300..400).contains(&status)
                    && location.contains("/login")
                    && !location.contains("error="));
            if login {
                pass(
                    "sso",
                    app,
                    Some(app),
                    format!("the sign-in page answers {redirect}"),
                )
            } else {
                let why = if location.contains("error=") {
                    location
                } else {
                    error_text(&body).unwrap_or_else(|| format!("HTTP {status}"))
                };
                fail(
                    "sso",
                    app,
                    Some(app),
                    format!("refused: {why}"),
                    "the app's single sign-on client is missing or has another redirect address; install the app again so the operator registers it",
                )
            }
        }
    }
}

/// The text of the first element the provider's error page marks `class="error"` (its
/// message to people), else the page title.
pub(super) fn error_text(html: &str) -> Option<String> {
    let text_after = |at: usize| -> Option<String> {
        let start = html[at..].find('>')? + at + 1;
        let end = html[start..].find('<')? + start;
        let t = html[start..end].trim();
        (!t.is_empty()).then(|| t.replace("&#39;", "'").replace("&quot;", "\""))
    };
    html.find("class=\"error\"")
        .and_then(text_after)
        .or_else(|| html.find("<title").and_then(text_after))
}

/// The verifier of the PKCE challenge every self-test authorization request sends (the
/// example pair of RFC 7636, appendix B).
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// Gives the throw-away user `role` in `app` through the API.
pub(super) async fn set_role(
    dashboard: &str,
    token: &str,
    user: &TestUser,
    app: &str,
    role: &str,
) -> Result<(), String> {
    let url = format!("{dashboard}/api/v1/users/{}/roles/{app}", user.id);
    let request = reqwest::Client::new()
        .put(url)
        .json(&serde_json::json!({ "role": role }));
    admin_call(request, token).await
}

/// What an app reads admin rights from, as its catalog entry says.
pub(super) struct AdminClaim {
    /// Read from UserInfo (true) or the ID token (false).
    pub userinfo: bool,
    /// The values an admin's `groups` must hold.
    pub expect: &'static [&'static str],
}

/// The throw-away user, now an admin of `app`, signs in through the app's client and the
/// code is redeemed with the app's own client secret, as the app would: the `groups` the app
/// maps admins from must say admin, where the app reads it (ID token or UserInfo).
pub(super) async fn admin_mapping_check(
    dashboard: &str,
    app: &str,
    redirect: &str,
    client_secret: &str,
    user: &TestUser,
    wanted: &AdminClaim,
) -> Check {
    let failed = |detail: String, todo: &str| fail("sso-admin", app, Some(app), detail, todo);
    let (signed_in, callback) = sign_in_check(dashboard, app, redirect, user).await;
    let Some(callback) = callback else {
        return failed(
            format!("an admin could not sign in: {}", signed_in.detail),
            "see the sso check above",
        );
    };
    let Some(code) = reqwest::Url::parse(&callback).ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
    }) else {
        return failed(format!("no code in {callback}"), "report this");
    };
    let http = reqwest::Client::new();
    let base = dashboard.trim_end_matches('/');
    let tokens = http
        .post(format!("{base}/token"))
        .basic_auth(app, Some(client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await;
    let tokens: serde_json::Value = match tokens {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
        Ok(r) => {
            let status = r.status().as_u16();
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            return failed(
                format!(
                    "the app's client secret was refused (HTTP {status}: {})",
                    v["error_description"].as_str().unwrap_or("no reason given")
                ),
                "the secret in the cluster and the one registered differ: install the app again so the operator registers it",
            );
        }
        Err(e) => {
            return failed(
                format!("the Dashboard did not answer: {e}"),
                "check the Dashboard",
            );
        }
    };
    let (claims, place) = if wanted.userinfo {
        let info = http
            .get(format!("{base}/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap_or_default())
            .send()
            .await;
        match info {
            Ok(r) if r.status().is_success() => (r.json().await.unwrap_or_default(), "UserInfo"),
            Ok(r) => {
                return failed(
                    format!("UserInfo answered HTTP {}", r.status().as_u16()),
                    "report this",
                );
            }
            Err(e) => {
                return failed(
                    format!("the Dashboard did not answer: {e}"),
                    "check the Dashboard",
                );
            }
        }
    } else {
        let payload = tokens["id_token"]
            .as_str()
            .and_then(|t| t.split('.').nth(1))
            .and_then(|p| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        match payload {
            Some(p) => (p, "the ID token"),
            None => return failed("no readable ID token".into(), "report this"),
        }
    };
    let groups: Vec<&str> = claims["groups"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if wanted.expect.iter().all(|w| groups.contains(w)) {
        pass(
            "sso-admin",
            app,
            Some(app),
            format!(
                "an admin of {app} gets groups {groups:?} in {place}, which {app} maps to its admin role"
            ),
        )
    } else {
        failed(
            format!(
                "an admin of {app} gets groups {groups:?} in {place}; {app} needs {:?}",
                wanted.expect
            ),
            "the app's client has another claim shape: install the app again so the operator registers it as its catalog entry says",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_are_unescaped_whatever_the_entity_style() {
        assert_eq!(
            unescape("/authorize?a=1&#38;b=2&amp;c=3&#x26;d=&#x2F;&#x2f;&quot;"),
            "/authorize?a=1&b=2&c=3&d=//\""
        );
        assert_eq!(
            unescape("fish & chips &nope; &#xZZ;"),
            "fish & chips &nope; &#xZZ;"
        );
        assert_eq!(
            hidden(
                r#"<input type="hidden" name="return_to" value="/x?a&#38;b">"#,
                "return_to"
            ),
            Some("/x?a&b".to_string())
        );
    }
}
