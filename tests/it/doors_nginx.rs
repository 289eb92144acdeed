//! A real nginx (`auth_request`) in front of a small upstream, asking `/v1/forward-auth` about every request:
//! allowed requests reach the upstream (with the decision's headers), denied ones get 403, requests without
//! credentials 401, and a request the mapping does not know 403. Driven with `curl` through nginx.

use std::time::Duration;

use serde_json::json;

use crate::common::tokens::{claims, jwks, Signer};
use crate::common::*;
use crate::doors_ext_authz::{MAPPING, POLICIES};
use crate::doors_http::curl;

fn nginx_conf(
    dir: &std::path::Path,
    port: u16,
    upstream: u16,
    arbiter: std::net::SocketAddr,
) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    # The upstream: echoes what it was asked and the decision nginx passed on.
    server {{
        listen 127.0.0.1:{upstream};
        location / {{
            default_type text/plain;
            return 200 "upstream $request_method $request_uri policies=$http_x_arbiter_policies\n";
        }}
    }}

    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_request /_arbiter;
            auth_request_set $arbiter_policies $upstream_http_x_arbiter_policies;
            proxy_set_header X-Arbiter-Policies $arbiter_policies;
            proxy_pass http://127.0.0.1:{upstream};
        }}
        location = /_arbiter {{
            internal;
            proxy_pass http://{arbiter}/v1/forward-auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Real-IP $remote_addr;
        }}
    }}
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_lets_allowed_requests_through() {
    if !external("nginx", &["nginx", "-v"]) || !external("curl", &["curl", "--version"]) {
        return;
    }
    let signer = Signer::new(jsonwebtoken::Algorithm::ES256, "k1");
    let keys = tempfile::tempdir().unwrap();
    let jwks_path = keys.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&[&signer])).unwrap();
    // nginx connects from 127.0.0.1, inside no 10/8 rule: this set allows loopback instead.
    let policies = POLICIES.replace("10.0.0.0/8", "127.0.0.0/8");
    let h = Harness::start_with(
        &[("p.yaml", policies.as_str()), ("mapping.yaml", MAPPING)],
        move |c| {
            c.http_listen = Some("127.0.0.1:0".parse().unwrap());
            c.tokens = Some(arbiter::server::token::TokenSettings {
                jwks: vec![jwks_path],
                ..Default::default()
            });
        },
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let (port, upstream) = (free_port(), free_port());
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_conf(dir.path(), port, upstream, h.server.http_addr().unwrap()),
    )
    .unwrap();
    let mut nginx = tokio::process::Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .kill_on_drop(true)
        .spawn()
        .expect("nginx starts");
    let base = format!("http://127.0.0.1:{port}");
    eventually("nginx accepts connections", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;

    let ops = signer.sign(&claims("alice", json!({"groups": ["ops"]})));
    let outsider = signer.sign(&claims("eve", json!({"groups": ["guests"]})));
    let bearer = |t: &str| format!("authorization: Bearer {t}");

    // Allowed: the upstream answers, and sees the deciding policy.
    let (status, body, _) = curl(
        "GET",
        &format!("{base}/v1/keys/web-1"),
        &[&bearer(&ops)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let text = body.as_str().unwrap();
    assert!(
        text.starts_with("upstream GET /v1/keys/web-1 policies=ops-read-inside"),
        "{text}"
    );

    // Denied by a deny policy.
    let (status, _, _) = curl(
        "POST",
        &format!("{base}/v1/keys/db-main/export"),
        &[&bearer(&ops)],
        None,
    )
    .await;
    assert_eq!(status, 403);
    // No policy for this principal.
    let (status, _, _) = curl(
        "GET",
        &format!("{base}/v1/keys/web-1"),
        &[&bearer(&outsider)],
        None,
    )
    .await;
    assert_eq!(status, 403);
    // No credentials, and a bad token: 401.
    let (status, _, headers) = curl("GET", &format!("{base}/v1/keys/web-1"), &[], None).await;
    assert_eq!(status, 401);
    assert!(headers.contains("www-authenticate: bearer"), "{headers}");
    let (status, _, _) = curl(
        "GET",
        &format!("{base}/v1/keys/web-1"),
        &[&bearer("x.y.z")],
        None,
    )
    .await;
    assert_eq!(status, 401);
    // A path no route maps.
    let (status, _, _) = curl("GET", &format!("{base}/admin"), &[&bearer(&ops)], None).await;
    assert_eq!(status, 403);
    // A trusted header is honoured only because the mapping names it; nginx passes it through here.
    let (status, _, _) = curl(
        "GET",
        &format!("{base}/v1/keys/web-1"),
        &["x-forwarded-user: bob", "x-forwarded-groups: ops"],
        None,
    )
    .await;
    assert_eq!(status, 200);

    // Arbiter's forward-auth directly, as a proxy calls it: the client address is the last X-Forwarded-For
    // entry, the one the nearest proxy added; a trusted header sent twice is refused.
    let direct = format!("http://{}/v1/forward-auth", h.server.http_addr().unwrap());
    let ops_header = bearer(&ops);
    for (chain, expected) in [
        ("x-forwarded-for: 127.0.0.1, 192.168.7.7", 403),
        ("x-forwarded-for: 192.168.7.7, 127.0.0.1", 200),
    ] {
        let headers = [
            ops_header.as_str(),
            "x-original-method: GET",
            "x-original-uri: /v1/keys/web-1",
            chain,
        ];
        let (status, body, _) = curl("GET", &direct, &headers, None).await;
        assert_eq!(status, expected, "{chain}: {body}");
    }
    let (status, body, _) = curl(
        "GET",
        &direct,
        &[
            "x-original-method: GET",
            "x-original-uri: /v1/keys/web-1",
            "x-forwarded-user: bob",
            "x-forwarded-user: admin",
            "x-forwarded-groups: ops",
        ],
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("x-forwarded-user")),
        "{body}"
    );

    let _ = nginx.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(10), nginx.wait()).await;
    h.stop().await;
}
