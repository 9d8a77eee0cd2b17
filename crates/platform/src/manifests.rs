//! The desired state as a kustomize tree (`stackspin manifests`): one file per object and a
//! `kustomization.yaml` listing them. The ClusterIssuers are a tree of their own
//! (`issuers/`), applied once cert-manager has installed its CRDs.

use std::collections::BTreeMap;

use crate::{Object, PlatformError};

/// One file of the tree; `private` files hold secrets and are written mode 0600.
#[derive(Clone, PartialEq, Eq)]
pub struct ManifestFile {
    pub path: String,
    pub contents: String,
    pub private: bool,
}

impl std::fmt::Debug for ManifestFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestFile")
            .field("path", &self.path)
            .field("private", &self.private)
            .finish()
    }
}

fn file_name(o: &Object) -> String {
    let kind = o.kind().to_ascii_lowercase();
    match o.namespace() {
        Some(ns) => format!("{ns}/{kind}-{}.yaml", o.name()),
        None => format!("cluster/{kind}-{}.yaml", o.name()),
    }
}

fn kustomization(resources: &[String]) -> String {
    let mut s = String::from(
        "# Written by `stackspin manifests`; apply with `kubectl apply -k`.\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    for r in resources {
        s.push_str(&format!("  - {r}\n"));
    }
    s
}

/// The files of the tree, in a stable order.
pub fn tree(objects: &[Object]) -> Result<Vec<ManifestFile>, PlatformError> {
    let mut main = BTreeMap::new();
    let mut issuers = BTreeMap::new();
    for o in objects {
        let text = serde_saphyr::to_string(&o.to_value())
            .map_err(|e| PlatformError::Render(format!("{} {}: {e}", o.kind(), o.name())))?;
        let file = ManifestFile {
            path: file_name(o),
            contents: text,
            private: o.is_secret(),
        };
        let target = if matches!(o, Object::ClusterIssuer(_)) {
            &mut issuers
        } else {
            &mut main
        };
        if target.insert(file.path.clone(), file).is_some() {
            return Err(PlatformError::Render(format!(
                "two objects would be written to {}",
                file_name(o)
            )));
        }
    }
    let mut files = Vec::new();
    let main_paths: Vec<String> = main.keys().cloned().collect();
    files.push(ManifestFile {
        path: "kustomization.yaml".into(),
        contents: kustomization(&main_paths),
        private: false,
    });
    files.extend(main.into_values());
    let issuer_paths: Vec<String> = issuers
        .keys()
        .map(|p| p.trim_start_matches("cluster/").to_string())
        .collect();
    files.push(ManifestFile {
        path: "issuers/kustomization.yaml".into(),
        contents: kustomization(&issuer_paths),
        private: false,
    });
    for (path, mut f) in issuers {
        f.path = format!("issuers/{}", path.trim_start_matches("cluster/"));
        files.push(f);
    }
    Ok(files)
}
