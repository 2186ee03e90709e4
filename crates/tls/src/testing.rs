//! A certificate authority for tests: a CA certificate and server
//! certificates it issues, written to PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A test certificate authority, with its certificate in `ca.pem` of its
/// directory.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
    name: String,
}

/// A certificate and key issued by a [`TestCa`], as PEM files.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, its certificate written to `dir/NAME-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, format!("ctxmesh test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("a self-signed CA certificate");
        std::fs::write(dir.join(format!("{name}-ca.pem")), cert.pem()).expect("write the CA certificate");
        TestCa { issuer: Issuer::new(params, key), dir: dir.to_owned(), name: name.to_owned() }
    }

    /// The CA certificate's file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A server certificate for `names` (DNS names or IP addresses), and
    /// its key, written to `dir/FILE.pem` and `dir/FILE.key` (replacing
    /// them: a server reloading them sees the change).
    pub fn issue(&self, names: &[&str], file: &str) -> IssuedCert {
        let (cert_pem, key_pem) = self.issue_pem(names);
        let issued =
            IssuedCert { cert: self.dir.join(format!("{file}.pem")), key: self.dir.join(format!("{file}.key")) };
        write_replacing(&issued.key, &key_pem);
        write_replacing(&issued.cert, &cert_pem);
        issued
    }

    /// A server certificate for `names` and its key, as PEM text.
    pub fn issue_pem(&self, names: &[&str]) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("names");
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("ctxmesh test"));
        let key = KeyPair::generate().expect("a server key");
        let cert = params.signed_by(&key, &self.issuer).expect("a certificate signed by the CA");
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes `content` to a temporary file beside `path`, then renames it
/// over `path`, so that a reader sees the old file or the new one whole.
fn write_replacing(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write a certificate file");
    std::fs::rename(&tmp, path).expect("replace a certificate file");
}
