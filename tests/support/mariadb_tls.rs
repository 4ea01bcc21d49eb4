//! A dedicated MariaDB server with TLS on: a throwaway CA and a server certificate for 127.0.0.1 made
//! with the `openssl` command in a temporary directory, given to `mariadbd` as
//! `--ssl-cert/--ssl-key/--ssl-ca`. A second, unrelated CA stands for "the wrong CA".
//!
//! Used from a test file with `#[path = "support/mariadb_tls.rs"] mod mariadb_tls;` next to
//! `mod support;` (so tests/support/mod.rs stays as it is).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{MariaDbOptions, MariaDbServer};

/// The server and the certificate files (kept until dropped; the server stops first).
pub struct TlsMariaDb {
    pub server: MariaDbServer,
    /// PEM of the CA that signed the server's certificate.
    pub ca: PathBuf,
    /// PEM of a CA that signed nothing the server has.
    pub wrong_ca: PathBuf,
    _dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes `ca.pem`, `wrong-ca.pem`, `server.crt` and `server.key` (SAN IP:127.0.0.1 only) in `dir`.
pub fn make_certificates(dir: &Path) -> bool {
    let ca = |key: &str, pem: &str, cn: &str| {
        openssl(
            dir,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", pem,
                "-days", "2", "-subj", cn,
            ],
        )
    };
    let made = ca("ca.key", "ca.pem", "/CN=zerodown test CA")
        && ca("wrong-ca.key", "wrong-ca.pem", "/CN=zerodown wrong CA")
        && openssl(
            dir,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
                "server.csr", "-subj", "/CN=127.0.0.1",
            ],
        )
        && std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .is_ok()
        && openssl(
            dir,
            &[
                "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf",
            ],
        );
    if made {
        // mariadbd may run as another user: throwaway files, readable by all.
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
        for f in ["ca.pem", "wrong-ca.pem", "server.crt", "server.key"] {
            let _ = std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644));
        }
    }
    made
}

/// A dedicated MariaDB with TLS; `None` (after a SKIP line) without openssl or MariaDB.
pub fn start() -> Option<TlsMariaDb> {
    let dir = tempfile::tempdir().expect("tempdir");
    if !make_certificates(dir.path()) {
        eprintln!("SKIP: openssl could not make test certificates");
        return None;
    }
    let path = |f: &str| dir.path().join(f).display().to_string();
    let server = MariaDbServer::start_dedicated(MariaDbOptions {
        binlog: false,
        extra_args: vec![
            format!("--ssl-cert={}", path("server.crt")),
            format!("--ssl-key={}", path("server.key")),
            format!("--ssl-ca={}", path("ca.pem")),
        ],
    })?;
    Some(TlsMariaDb {
        server,
        ca: dir.path().join("ca.pem"),
        wrong_ca: dir.path().join("wrong-ca.pem"),
        _dir: dir,
    })
}
