//! The deployment kit, checked with the tools that judge such files (no registry or cluster here): the
//! Kubernetes manifests against the Kubernetes OpenAPI schemas (`kubernetes-validate --strict`, offline), the
//! Dockerfile with `hadolint`, the example ConfigMap's policies with `arbiter check`, and every `arbiter` flag
//! the manifests and the image use against `arbiter serve --help`. Each check is also shown to fail on a broken
//! copy, so that a passing run means something.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn manifests() -> Vec<PathBuf> {
    let dir = root().join("deploy/kubernetes");
    let mut out = vec![
        dir.join("configmap.yaml"),
        dir.join("deployment.yaml"),
        dir.join("git-sync/deployment.yaml"),
    ];
    out.sort();
    out
}

fn kubernetes_validate(files: &[PathBuf]) -> std::process::Output {
    Command::new("kubernetes-validate")
        .arg("--strict")
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    if !common::external("kubernetes-validate", &["kubernetes-validate", "--version"]) {
        return;
    }
    let files = manifests();
    let out = kubernetes_validate(&files);
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    // Every resource of every file was checked (ConfigMap, two Deployments, the NetworkPolicy).
    assert_eq!(
        report.matches(" passed for resource ").count(),
        4,
        "{report}"
    );

    // A misspelt field fails strict validation: the check can fail.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("deployment.yaml");
    let text = std::fs::read_to_string(&files[1]).unwrap();
    assert!(text.contains("readOnlyRootFilesystem"));
    std::fs::write(
        &broken,
        text.replacen("readOnlyRootFilesystem", "readOnlyRootFileSystem", 1),
    )
    .unwrap();
    assert!(!kubernetes_validate(&[broken]).status.success());
}

#[test]
fn the_dockerfile_passes_hadolint() {
    if !common::external("hadolint", &["hadolint", "--version"]) {
        return;
    }
    let dockerfile = root().join("Dockerfile");
    let out = Command::new("hadolint").arg(&dockerfile).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A classic mistake fails it.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    std::fs::write(&broken, text.replacen("WORKDIR /src", "RUN cd /src", 1)).unwrap();
    assert!(!Command::new("hadolint")
        .arg(&broken)
        .output()
        .unwrap()
        .status
        .success());
}

#[test]
fn the_image_holds_only_the_binary_and_ca_certificates_and_runs_as_non_root() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let final_stage = text.rsplit_once("FROM ").unwrap().1;
    assert!(final_stage.starts_with("scratch"), "{final_stage}");
    let copies: Vec<&str> = final_stage
        .lines()
        .filter(|l| l.starts_with("COPY"))
        .collect();
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(copies
        .iter()
        .any(|c| c.ends_with("/etc/ssl/certs/ca-certificates.crt")));
    assert!(copies.iter().any(|c| c.ends_with("/usr/local/bin/arbiter")));
    assert!(final_stage.contains("\nUSER 65532:65532\n"));
}

#[test]
fn the_example_configmap_holds_a_valid_policy_set() {
    let text = std::fs::read_to_string(root().join("deploy/kubernetes/configmap.yaml")).unwrap();
    let doc = &arbiter::source::parse_documents(Path::new("configmap.yaml"), &text).unwrap()[0];
    let data = doc.to_json()["data"].as_object().unwrap().clone();
    assert!(!data.is_empty());
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in &data {
        std::fs::write(dir.path().join(name), body.as_str().unwrap()).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["check", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_flag_the_kit_passes_to_arbiter_exists() {
    let help = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    // Container args in the manifests (`- --flag=value`), and the image's CMD.
    let mut args: Vec<String> = Vec::new();
    for file in manifests() {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            if let Some(arg) = line.trim().strip_prefix("- --") {
                args.push(arg.to_string());
            }
        }
    }
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let cmd = dockerfile.lines().find(|l| l.starts_with("CMD ")).unwrap();
    let cmd: Vec<String> = serde_json::from_str(&cmd["CMD ".len()..]).unwrap();
    args.extend(
        cmd.iter()
            .filter_map(|a| a.strip_prefix("--"))
            .map(str::to_string),
    );
    let mut flags = 0;
    for arg in &args {
        let name = arg.split('=').next().unwrap();
        // git-sync's own flags belong to git-sync.
        if ["repo", "ref", "root", "link", "period", "one-time"].contains(&name) {
            continue;
        }
        assert!(
            help.contains(&format!("--{name} ")),
            "`--{name}` is not a flag of `arbiter serve`"
        );
        flags += 1;
    }
    assert!(flags >= 8, "only {flags} flags found");
}
