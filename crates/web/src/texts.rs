//! Every text the Dashboard and login pages show, in one catalogue (`texts/en.toml`),
//! looked up by key, so that a translation is one more file, not a hunt through templates.
//!
//! Templates call `texts::t("key")`, or `texts::tf("key", [("name", value)])` (values of one type that implements `Display`) for texts
//! with `{name}` placeholders; handlers do the same. A text that counts something is a table
//! with `one` and `other` forms, picked by `texts::tn("key", n, [...])`, so "1 user" never
//! reads "1 users". A key missing from the catalogue shows
//! as the key itself (never a panic), and a test checks that every key used exists and every
//! key in the catalogue is used.

use std::{collections::HashMap, sync::LazyLock};

/// The English catalogue, compiled into the binary.
pub const EN: &str = include_str!("../texts/en.toml");

static CATALOGUE: LazyLock<HashMap<String, String>> = LazyLock::new(|| parse(EN));

/// Flattens `[section] key = "text"` into `section.key`. A malformed catalogue is caught by
/// the test suite; at run time it leaves keys showing, rather than stopping the server.
pub fn parse(source: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(table) = source.parse::<toml::Table>() else {
        return out;
    };
    fn walk(prefix: &str, t: &toml::Table, out: &mut HashMap<String, String>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::String(s) => {
                    out.insert(key, s.clone());
                }
                toml::Value::Table(inner) => walk(&key, inner, out),
                _ => {}
            }
        }
    }
    walk("", &table, &mut out);
    out
}

/// The text for `key`.
pub fn t(key: &'static str) -> &'static str {
    CATALOGUE.get(key).map(String::as_str).unwrap_or(key)
}

/// The text for `key` with each `{name}` replaced by its value.
pub fn tf<'a, V: std::fmt::Display>(
    key: &'static str,
    values: impl AsRef<[(&'a str, V)]>,
) -> String {
    let mut text = t(key).to_owned();
    for (name, value) in values.as_ref() {
        text = text.replace(&format!("{{{name}}}"), &value.to_string());
    }
    text
}

/// The form of a counted text for `n` (`key.one` or `key.other`, English's two plural
/// forms), with `{n}` and each `{name}` replaced. A translation with more forms adds keys here,
/// not in the templates.
pub fn tn<'a, V: std::fmt::Display>(
    key: &'static str,
    n: impl Count,
    values: impl AsRef<[(&'a str, V)]>,
) -> String {
    let form = if n.is_one() { "one" } else { "other" };
    let mut text = CATALOGUE
        .get(&format!("{key}.{form}"))
        .cloned()
        .unwrap_or_else(|| key.to_owned());
    text = text.replace("{n}", &n.shown());
    for (name, value) in values.as_ref() {
        text = text.replace(&format!("{{{name}}}"), &value.to_string());
    }
    text
}

/// What `tn` counts: any integer, as templates hold them.
pub trait Count {
    fn is_one(&self) -> bool;
    fn shown(&self) -> String;
}

macro_rules! count_ints {
    ($($t:ty),*) => {$(
        impl Count for $t {
            fn is_one(&self) -> bool {
                *self == 1
            }
            fn shown(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
count_ints!(u8, u16, u32, u64, usize, i32, i64);

impl<T: Count + ?Sized> Count for &T {
    fn is_one(&self) -> bool {
        (**self).is_one()
    }
    fn shown(&self) -> String {
        (**self).shown()
    }
}

/// No values besides the count.
pub const NONE: [(&str, &str); 0] = [];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_parses_and_fills_placeholders() {
        assert!(EN.parse::<toml::Table>().is_ok());
        assert!(!CATALOGUE.is_empty());
        let map = parse("[a]\nb = \"Hello {name}, {n} new\"");
        assert_eq!(map["a.b"], "Hello {name}, {n} new");
        assert_eq!(t("no.such.key"), "no.such.key");
        assert_eq!(tn("admin_users.count", 1, NONE), "1 user.");
        assert_eq!(tn("admin_users.count", 2, NONE), "2 users.");
        assert_eq!(tn("admin_users.count", 0, NONE), "0 users.");
        assert_eq!(
            tf(
                "home.signed_in_as",
                [("name", "Ada"), ("email", "ada@example.org")]
            ),
            "Signed in as Ada (ada@example.org)."
        );
    }

    /// Every key the templates and handlers use is in the catalogue, and every key in the
    /// catalogue is used: the catalogue is the whole list of texts a translator works from.
    #[test]
    fn the_catalogue_and_the_sources_agree() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut used = std::collections::BTreeSet::new();
        for dir in ["templates", "src", "src/api", "src/oidc"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if !path.is_file() || path.ends_with("texts.rs") {
                    continue;
                }
                let source = std::fs::read_to_string(&path).unwrap();
                // Handlers may pass a key along to a helper that looks it up.
                if path.extension().is_some_and(|e| e == "rs") {
                    for (i, _) in source.match_indices("\"msg.") {
                        let rest = &source[i + 1..];
                        let key = rest[..rest.find('"').unwrap()].to_owned();
                        // A plural key passed along stands for its forms.
                        if CATALOGUE.contains_key(&format!("{key}.one")) {
                            used.insert(format!("{key}.one"));
                            used.insert(format!("{key}.other"));
                        } else {
                            used.insert(key);
                        }
                    }
                }
                // rustfmt may put the key on the line after the call.
                for call in ["texts::t(", "texts::tf(", "texts::tn("] {
                    for (i, _) in source.match_indices(call) {
                        let rest = source[i + call.len()..].trim_start();
                        if let Some(rest) = rest.strip_prefix('"') {
                            let key = rest[..rest.find('"').unwrap()].to_owned();
                            if call == "texts::tn(" {
                                used.insert(format!("{key}.one"));
                                used.insert(format!("{key}.other"));
                            } else {
                                used.insert(key);
                            }
                        }
                    }
                }
            }
        }
        let missing: Vec<_> = used
            .iter()
            .filter(|k| !CATALOGUE.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty(),
            "keys missing from texts/en.toml: {missing:?}"
        );
        let unused: Vec<_> = CATALOGUE.keys().filter(|k| !used.contains(*k)).collect();
        assert!(
            unused.is_empty(),
            "keys in texts/en.toml that nothing uses: {unused:?}"
        );
        assert!(used.len() > 150, "only {} keys found", used.len());
    }
}
