//! Values templates: YAML data whose string scalars may hold `${name}` placeholders.
//!
//! The structure is data, parsed once; only string leaves are substituted, so a value can
//! never change the shape of the document (no YAML assembled from strings). A scalar that is
//! exactly one placeholder takes the placeholder's type (a port stays a number).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::CatalogError;

/// Placeholders a values template may use. Secrets are not among them: they reach the chart
/// through a Secret (`secret_values`), never through the values in the HelmRelease.
pub const VALUE_PLACEHOLDERS: &[&str] = &[
    "app",
    "backup_set",
    "namespace",
    "domain",
    "host",
    "url",
    "issuer",
    "client_id",
    "admin_email",
    "cluster_issuer",
    "forward_auth",
    "secret_name",
    "requests.cpu",
    "requests.memory",
    "mail.host",
    "mail.port",
    "mail.port_text",
    "mail.from",
    "mail.from_local",
    "mail.from_domain",
    "mail.user",
    "mail.security",
    "mail.secure",
    "mail.use_tls",
    "mail.use_ssl",
    "backup.url",
    "backup.bucket",
    "backup.region",
    "backup.prefix",
    "backup.schedule",
    "backup.ttl",
];

/// Placeholders only a secret value may use, besides `secret.<name>`.
pub const SECRET_PLACEHOLDERS: &[&str] = &[
    "oidc.client_secret",
    "mail.password",
    "mail.url",
    "cluster_config",
    "backup.access_key_id",
    "backup.secret_access_key",
];

/// What a whole may know of each of its parts (Nextcloud of Onlyoffice): `part.<name>.<what>`.
pub const PART_PLACEHOLDERS: &[&str] = &["host", "url", "secret_name"];

/// The part a `part.<name>.<what>` placeholder names, if it is one.
pub fn part_of_placeholder(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("part.")?;
    let (part, what) = rest.split_once('.')?;
    (!part.is_empty() && PART_PLACEHOLDERS.contains(&what)).then_some(part)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template(Value);

/// What a template is rendered with.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    values: BTreeMap<String, Value>,
}

impl Vars {
    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.values.insert(name.to_string(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }
}

impl Template {
    pub(crate) fn parse(file: &str, text: &str) -> Result<Self, CatalogError> {
        let value: Value = serde_saphyr::from_str(text).map_err(|e| CatalogError::Parse {
            file: file.to_string(),
            field: String::new(),
            message: first_line(&e.to_string()),
        })?;
        if !value.is_object() {
            return Err(CatalogError::Invalid {
                file: file.to_string(),
                field: "(top)".into(),
                message: "must be a map of chart values".into(),
            });
        }
        Ok(Self(value))
    }

    pub(crate) fn string(s: &str) -> Self {
        Self(Value::String(s.to_string()))
    }

    /// The template's data, placeholders unreplaced.
    pub fn raw(&self) -> &Value {
        &self.0
    }

    /// The value at a dotted path (`persistence.labels`), if there is one.
    pub fn get(&self, path: &str) -> Option<&Value> {
        split_path(path)
            .iter()
            .try_fold(&self.0, |v, key| v.get(key.as_str()))
    }

    /// Every placeholder is known, and secret ones appear only where secrets may.
    pub(crate) fn check_placeholders(
        &self,
        _file: &str,
        secrets_allowed: bool,
    ) -> Result<(), (String, String)> {
        let mut problem = None;
        walk_strings(&self.0, &mut String::new(), &mut |path, s| {
            if problem.is_some() {
                return;
            }
            match placeholders(s) {
                Err(message) => problem = Some((path.to_string(), message)),
                Ok(names) => {
                    for name in names {
                        let is_value = VALUE_PLACEHOLDERS.contains(&name.as_str())
                            || part_of_placeholder(&name).is_some();
                        let is_secret = SECRET_PLACEHOLDERS.contains(&name.as_str())
                            || name.strip_prefix("secret.").is_some_and(|n| !n.is_empty());
                        if is_secret && !secrets_allowed {
                            problem = Some((
                                path.to_string(),
                                format!(
                                    "${{{name}}} is a secret: give it through [[secret_values]] in app.toml"
                                ),
                            ));
                        } else if !is_value && !is_secret {
                            problem = Some((
                                path.to_string(),
                                format!("unknown placeholder ${{{name}}}"),
                            ));
                        }
                    }
                }
            }
        });
        problem.map_or(Ok(()), Err)
    }

    fn names(&self) -> Vec<String> {
        let mut all = Vec::new();
        walk_strings(&self.0, &mut String::new(), &mut |_, s| {
            all.extend(placeholders(s).unwrap_or_default());
        });
        all
    }

    pub(crate) fn secret_names(&self) -> Vec<String> {
        self.names()
            .into_iter()
            .filter_map(|n| n.strip_prefix("secret.").map(str::to_string))
            .collect()
    }

    /// The parts this template reads (`part.<name>.*`).
    pub(crate) fn part_names(&self) -> Vec<String> {
        self.names()
            .iter()
            .filter_map(|n| part_of_placeholder(n).map(str::to_string))
            .collect()
    }

    pub(crate) fn uses(&self, placeholder: &str) -> bool {
        self.names().iter().any(|n| n == placeholder)
    }

    pub(crate) fn uses_backup(&self) -> bool {
        self.names().iter().any(|n| n.starts_with("backup."))
    }

    pub(crate) fn uses_mail(&self) -> bool {
        self.names().iter().any(|n| n.starts_with("mail."))
    }

    pub(crate) fn uses_oidc(&self) -> bool {
        self.names()
            .iter()
            .any(|n| n == "client_id" || n == "oidc.client_secret")
    }

    /// Substitutes every placeholder. A name missing from `vars` is an error that names it.
    pub fn render(&self, vars: &Vars) -> Result<Value, String> {
        render_value(&self.0, vars)
    }
}

fn render_value(v: &Value, vars: &Vars) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => render_string(s, vars)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_value(i, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn render_string(s: &str, vars: &Vars) -> Result<Value, String> {
    let lookup = |name: &str| {
        vars.get(name)
            .cloned()
            .ok_or_else(|| format!("no value for ${{{name}}}"))
    };
    // A scalar that is one placeholder keeps the value's own type.
    if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
        && !name.contains(['$', '{', '}'])
    {
        return lookup(name);
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(open) = after.strip_prefix('{') {
            let end = open.find('}').ok_or("unclosed ${")?;
            match lookup(&open[..end])? {
                Value::String(text) => out.push_str(&text),
                other => out.push_str(&other.to_string()),
            }
            rest = &open[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

/// The placeholder names in one string; `$${` is a literal `${`.
fn placeholders(s: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            rest = escaped;
        } else if let Some(open) = after.strip_prefix('{') {
            let end = open
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
            let name = &open[..end];
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._".contains(&b))
            {
                return Err(format!("bad placeholder ${{{name}}}"));
            }
            names.push(name.to_string());
            rest = &open[end + 1..];
        } else {
            rest = after;
        }
    }
    Ok(names)
}

fn walk_strings(v: &Value, path: &mut String, f: &mut dyn FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(path, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk_strings(item, path, f);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk_strings(item, path, f);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Splits a dotted values path; `\.` is a dot inside a key (`grafana\.ini`), as in Helm's
/// `--set` syntax that Flux's `targetPath` uses.
pub fn split_path(path: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                chars.next();
                parts.last_mut().expect("never empty").push('.');
            }
            '.' => parts.push(String::new()),
            c => parts.last_mut().expect("never empty").push(c),
        }
    }
    parts
}

/// A `targetPath` Flux accepts: dotted keys, optional `[n]` indexes, no empty parts.
pub(crate) fn check_target_path(path: &str) -> Result<(), String> {
    for part in split_path(path) {
        let key = part.split('[').next().unwrap_or_default();
        let indexes_ok = part[key.len()..].split_terminator(']').all(|i| {
            i.strip_prefix('[')
                .is_some_and(|n| n.parse::<usize>().is_ok())
        });
        if key.is_empty() || !indexes_ok || key.contains([' ', '=', ',']) {
            return Err(format!("{path:?} is not a values path (a.b[0].c)"));
        }
    }
    Ok(())
}

/// Merges `over` into `base`: maps key by key, anything else replaced.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        let mut v = Vars::default();
        v.set("host", "files.example.org");
        v.set("mail.port", 587);
        v
    }

    #[test]
    fn placeholders_are_replaced_in_leaves_only_and_keep_types() {
        let t = Template::parse(
            "t",
            "a: ${host}\nb: https://${host}/x\nport: ${mail.port}\nlit: $${host}\nlist: [\"${host}\"]\n",
        )
        .expect("parses");
        let v = t.render(&vars()).expect("renders");
        assert_eq!(v["a"], "files.example.org");
        assert_eq!(v["b"], "https://files.example.org/x");
        assert_eq!(v["port"], 587);
        assert_eq!(v["lit"], "${host}");
        assert_eq!(v["list"][0], "files.example.org");
    }

    #[test]
    fn a_value_cannot_change_the_shape() {
        let mut evil = Vars::default();
        evil.set("host", "x\nadmin: true");
        let t = Template::parse("t", "a: ${host}\n").expect("parses");
        let v = t.render(&evil).expect("renders");
        assert_eq!(v.as_object().map(|m| m.len()), Some(1));
        assert_eq!(v["a"], "x\nadmin: true");
    }

    #[test]
    fn unknown_and_secret_placeholders_are_refused_in_values() {
        let t = Template::parse("t", "a:\n  b: ${nope}\n").expect("parses");
        let (path, msg) = t.check_placeholders("t", false).expect_err("unknown");
        assert_eq!(path, "a.b");
        assert!(msg.contains("unknown placeholder ${nope}"), "{msg}");
        let t = Template::parse("t", "a: ${secret.x}\n").expect("parses");
        let (_, msg) = t.check_placeholders("t", false).expect_err("secret");
        assert!(msg.contains("secret_values"), "{msg}");
    }

    #[test]
    fn target_paths() {
        assert!(check_target_path("nextcloud.mail.smtp.password").is_ok());
        assert!(check_target_path("secretEnv[0].value").is_ok());
        assert!(check_target_path(r"grafana.grafana\.ini.x").is_ok());
        assert!(check_target_path("a..b").is_err());
        assert!(check_target_path("a[x]").is_err());
        assert_eq!(split_path(r"grafana\.ini.a"), vec!["grafana.ini", "a"]);
    }
}
