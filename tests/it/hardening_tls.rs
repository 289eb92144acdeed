//! TLS and mutual TLS on the TCP listener (hardening issue), with certificates generated at test time by
//! `rcgen`: under mTLS a client without a certificate (or with one from another CA) is refused and a valid one is
//! served; plain TLS serves any TLS client; a plaintext client is refused; bad TLS files fail the start.

use crate::common;

use std::path::Path;

use arbiter::server::proto::authorizer_client::AuthorizerClient;
use arbiter::server::tls::TlsFiles;
use arbiter::server::{RunningServer, ServeError, ServerConfig};
use common::{allow, request};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A CA and certificates it issues, as PEM.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

struct Issued {
    cert: String,
    key: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Pki {
            ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    fn issue(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &*self.ca).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    server: RunningServer,
}

async fn start(dir: tempfile::TempDir, tls: TlsFiles) -> Result<Setup, ServeError> {
    std::fs::write(dir.path().join("p.yaml"), allow("p1", "ReadKey")).unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    config.tls = Some(tls);
    let server = arbiter::server::start(config, std::future::pending()).await?;
    server.ready().await.expect("first load");
    Ok(Setup { _dir: dir, server })
}

/// Writes the server's material into `dir` and returns the files.
fn server_files(dir: &Path, pki: &Pki, client_ca: Option<&str>) -> TlsFiles {
    let server = pki.issue(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    std::fs::write(dir.join("server.pem"), &server.cert).unwrap();
    std::fs::write(dir.join("server.key"), &server.key).unwrap();
    let client_ca = client_ca.map(|pem| {
        std::fs::write(dir.join("client-ca.pem"), pem).unwrap();
        dir.join("client-ca.pem")
    });
    TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_ca,
    }
}

/// One `Authorize` over TLS trusting `ca`, optionally presenting `identity`. Any failure (handshake or call)
/// is an `Err` with its text.
async fn call_tls(
    server: &RunningServer,
    ca: &str,
    identity: Option<&Issued>,
) -> Result<bool, String> {
    let addr = server.tcp_addr().unwrap();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert, &id.key));
    }
    let channel = Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(common::WAIT)
        .timeout(common::WAIT)
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let response = AuthorizerClient::new(channel)
        .authorize(request("alice", "ReadKey"))
        .await
        .map_err(|e| format!("call: {e:?}"))?;
    Ok(common::is_allow(&response.into_inner()))
}

async fn call_plaintext(server: &RunningServer) -> Result<bool, String> {
    let addr = server.tcp_addr().unwrap();
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(common::WAIT)
        .timeout(common::WAIT)
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let response = AuthorizerClient::new(channel)
        .authorize(request("alice", "ReadKey"))
        .await
        .map_err(|e| format!("call: {e:?}"))?;
    Ok(common::is_allow(&response.into_inner()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_valid_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let servers = Pki::new("server CA");
    let clients = Pki::new("client CA");
    let files = server_files(dir.path(), &servers, Some(&clients.ca_pem()));
    let setup = start(dir, files).await.expect("starts");
    let server = &setup.server;

    // A valid client certificate is served.
    let alice = clients.issue(&["alice"], ExtendedKeyUsagePurpose::ClientAuth);
    assert_eq!(
        call_tls(server, &servers.ca_pem(), Some(&alice)).await,
        Ok(true)
    );

    // No client certificate: refused.
    let err = call_tls(server, &servers.ca_pem(), None).await.unwrap_err();
    eprintln!("without a client certificate: {err}");

    // A certificate from another CA: refused.
    let mallory = Pki::new("other CA").issue(&["mallory"], ExtendedKeyUsagePurpose::ClientAuth);
    let err = call_tls(server, &servers.ca_pem(), Some(&mallory))
        .await
        .unwrap_err();
    eprintln!("with a foreign client certificate: {err}");

    // Plaintext: refused.
    let err = call_plaintext(server).await.unwrap_err();
    eprintln!("plaintext: {err}");

    // And the valid client is still served afterwards.
    assert_eq!(
        call_tls(server, &servers.ca_pem(), Some(&alice)).await,
        Ok(true)
    );
    setup.server.shutdown();
    setup.server.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_a_client_ca_serves_any_tls_client() {
    let dir = tempfile::tempdir().unwrap();
    let servers = Pki::new("server CA");
    let files = server_files(dir.path(), &servers, None);
    let setup = start(dir, files).await.expect("starts");
    let server = &setup.server;

    assert_eq!(call_tls(server, &servers.ca_pem(), None).await, Ok(true));
    // The client checks the server: a client trusting another CA refuses it.
    let err = call_tls(server, &Pki::new("other CA").ca_pem(), None)
        .await
        .unwrap_err();
    eprintln!("untrusted server: {err}");
    // Plaintext is refused.
    assert!(call_plaintext(server).await.is_err());
    setup.server.shutdown();
    setup.server.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_files_fail_the_start() {
    let servers = Pki::new("server CA");

    // Missing key file.
    let dir = tempfile::tempdir().unwrap();
    let mut files = server_files(dir.path(), &servers, None);
    files.key = dir.path().join("missing.key");
    let err = start(dir, files).await.err().expect("refused");
    assert!(matches!(err, ServeError::Config(_)), "{err}");
    assert!(err.to_string().contains("missing.key"), "{err}");

    // Not PEM.
    let dir = tempfile::tempdir().unwrap();
    let files = server_files(dir.path(), &servers, None);
    std::fs::write(&files.cert, "not a certificate").unwrap();
    let err = start(dir, files).await.err().expect("refused");
    assert!(err.to_string().contains("not PEM"), "{err}");

    // A key that does not parse.
    let dir = tempfile::tempdir().unwrap();
    let files = server_files(dir.path(), &servers, None);
    std::fs::write(
        &files.key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = start(dir, files).await.err().expect("refused");
    assert!(matches!(err, ServeError::Config(_)), "{err}");
    eprintln!("bad key: {err}");
}

#[test]
fn serve_flags_and_a_bad_certificate_exit_2() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--tls-cert",
        "--tls-key",
        "--tls-client-ca",
        "ARBITER_TLS_CERT",
        "ARBITER_TLS_KEY",
        "ARBITER_TLS_CLIENT_CA",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
            .arg("serve")
            .args([
                "--policies",
                concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
            ])
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir.path())
            .env_remove("ARBITER_TLS_CERT")
            .env_remove("ARBITER_TLS_KEY")
            .env_remove("ARBITER_TLS_CLIENT_CA")
            .output()
            .unwrap()
    };
    let out = run(&["--tls-cert", "cert.pem", "--tls-key", "key.pem"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cert.pem") && stderr.contains("not PEM"),
        "{stderr}"
    );
    // A certificate without its key is a usage error.
    let out = run(&["--tls-cert", "cert.pem"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_bad_one_is_refused() {
    let old_ca = Pki::new("old CA");
    let new_ca = Pki::new("new CA");
    let dir = tempfile::tempdir().unwrap();
    let files = server_files(dir.path(), &old_ca, None);
    let cert_path = files.cert.clone();
    let key_path = files.key.clone();
    let setup = start(dir, files).await.unwrap();
    let server = &setup.server;
    assert_eq!(call_tls(server, &old_ca.ca_pem(), None).await, Ok(true));
    assert!(call_tls(server, &new_ca.ca_pem(), None).await.is_err());
    let status = |server: &RunningServer| {
        let addr = server.tcp_addr().unwrap();
        let ca = new_ca.ca_pem();
        let old = old_ca.ca_pem();
        async move {
            for ca in [ca, old] {
                let tls = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .domain_name("localhost");
                let Ok(channel) = Channel::from_shared(format!("https://{addr}"))
                    .unwrap()
                    .tls_config(tls)
                    .unwrap()
                    .connect()
                    .await
                else {
                    continue;
                };
                if let Ok(s) = AuthorizerClient::new(channel)
                    .get_status(arbiter::server::proto::GetStatusRequest {})
                    .await
                {
                    return s.into_inner();
                }
            }
            panic!("no status over TLS");
        }
    };
    let before = status(server).await;
    assert!(before.tls_not_after.is_some());
    assert!(before.tls_reload_error.is_empty());

    // Renewal: the new key and certificate are written (each by write-and-rename, as deploy tools do).
    let renewed = new_ca.issue(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    for (path, text) in [(&key_path, &renewed.key), (&cert_path, &renewed.cert)] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
    common::eventually("the renewed certificate is served", || async {
        call_tls(server, &new_ca.ca_pem(), None).await == Ok(true)
    })
    .await;
    assert!(call_tls(server, &old_ca.ca_pem(), None).await.is_err());

    // A broken certificate keeps the renewed one serving, and says why.
    std::fs::write(
        &cert_path,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    common::eventually("the broken file is reported", || async {
        !status(server).await.tls_reload_error.is_empty()
    })
    .await;
    assert_eq!(call_tls(server, &new_ca.ca_pem(), None).await, Ok(true));
    server.shutdown();
}
