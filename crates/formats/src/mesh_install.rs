//! `meshbench/mesh-install/v1`: what `mesh-install` writes (`mesh.json`) and `compare` reads.
//!
//! Times are seconds from the start of the install. `mesh-install` itself is built by a later
//! issue; the type is defined now because `compare` reads it and its field names are fixed.

use serde::{Deserialize, Serialize};

use crate::schema::Schema;

pub const MESH_INSTALL: Schema = Schema {
    document: "mesh-install",
    major: 1,
    id: "meshbench/mesh-install/v1",
};

/// One install of a mesh (or of none) and its sample workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshInstallSummary {
    pub schema: String,
    /// `linkerd`, `istio`, `none`, or a profile's name.
    pub mesh: String,
    /// The mesh's version as installed (chart or CLI version); empty for `none`.
    pub version: String,
    /// From the first install command to the control plane's deployments all Ready.
    pub install_s: f64,
    /// From the start to the first workload pod Ready with the proxy injected; `null` for `none`
    /// or when no pod was injected.
    pub first_injected_pod_s: Option<f64>,
    /// From the start to every workload pod Ready.
    pub all_pods_ready_s: f64,
    /// Workload pods deployed.
    pub pods: u64,
    /// Of those, pods that carry the mesh's proxy.
    pub injected_pods: u64,
}

impl MeshInstallSummary {
    /// Share of workload pods with the proxy, 0 to 1; `None` without pods.
    #[allow(clippy::cast_precision_loss)]
    pub fn injection_coverage(&self) -> Option<f64> {
        (self.pods > 0).then(|| self.injected_pods as f64 / self.pods as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_shape() {
        let text = r#"{"schema":"meshbench/mesh-install/v1","mesh":"linkerd","version":"2.14.0",
            "install_s":45.0,"first_injected_pod_s":12.0,"all_pods_ready_s":95.5,
            "pods":200,"injected_pods":200}"#;
        let s: MeshInstallSummary = serde_json::from_str(text).unwrap();
        assert_eq!(MESH_INSTALL.check(&s.schema), Ok(()));
        assert_eq!(s.injection_coverage(), Some(1.0));
        let back: MeshInstallSummary =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn none_has_no_injected_pod() {
        let text = r#"{"schema":"meshbench/mesh-install/v1","mesh":"none","version":"",
            "install_s":0.0,"first_injected_pod_s":null,"all_pods_ready_s":40.0,
            "pods":200,"injected_pods":0}"#;
        let s: MeshInstallSummary = serde_json::from_str(text).unwrap();
        assert_eq!(s.first_injected_pod_s, None);
        assert_eq!(s.injection_coverage(), Some(0.0));
    }
}
