//! `--tls`: HTTPS as a real API server serves it, with a certificate authority made at start-up
//! whose certificate goes into the kubeconfig (`certificate-authority-data`), so clients verify
//! the server as they verify kind's.

use std::sync::Arc;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// The acceptor for connections, and the CA certificate clients trust.
pub(crate) struct Identity {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) ca_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh CA (`kubesim-ca`) and a serving certificate for 127.0.0.1, ::1 and localhost.
    pub(crate) fn generate() -> Result<Identity, String> {
        let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| fail("CA", &e))?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kubesim-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().map_err(|e| fail("CA key", &e))?;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|e| fail("CA", &e))?;
        let mut params = CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "localhost".to_owned(),
            "kubernetes".to_owned(),
        ])
        .map_err(|e| fail("serving certificate", &e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let key = KeyPair::generate().map_err(|e| fail("serving key", &e))?;
        let cert = params
            .signed_by(&key, &ca)
            .map_err(|e| fail("serving certificate", &e))?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| fail("TLS", &e))?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), ca.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .map_err(|e| fail("TLS", &e))?;
        // HTTP/1.1 only: the API is served by hyper's HTTP/1 server.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Identity {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            ca_pem: ca.pem(),
        })
    }

    /// `certificate-authority-data` for a kubeconfig.
    pub(crate) fn ca_data(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes())
    }
}
