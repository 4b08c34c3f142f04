//! The deployment files in `deploy/` are checked by the tools their readers would use:
//! the Kubernetes manifests against the API schemas, the Dockerfile by hadolint, and the
//! routes files they ship by `switchyard routes check`. The checkers come with the test
//! command's Python venv (`./scripts/test.sh` installs them); a missing one fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::python;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .canonicalize()
        .expect("deploy/ exists")
}

/// A program the test command installs into the venv, next to its python.
fn venv_tool(name: &str) -> PathBuf {
    let tool = python()
        .parent()
        .expect("the venv python is in a bin dir")
        .join(name);
    assert!(
        tool.is_file(),
        "no {name} at {}: run ./scripts/test.sh, which installs it into the venv",
        tool.display()
    );
    tool
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The manifest files, sorted, so the check cannot pass on an empty folder.
fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy().join("k8s"))
        .expect("deploy/k8s exists")
        .map(|entry| entry.expect("can list deploy/k8s").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "deploy/k8s has its manifests: {files:?}");
    files
}

#[test]
fn the_kubernetes_manifests_match_the_api_schemas() {
    let files = manifests();
    // --strict refuses fields the schema does not know: a misspelt key is an error, not a
    // setting Kubernetes silently drops.
    let output = run(Command::new(venv_tool("kubernetes-validate"))
        .arg("--strict")
        .args(&files));
    assert_success("kubernetes-validate --strict deploy/k8s/*.yaml", &output);
    let report = String::from_utf8_lossy(&output.stdout);
    for kind in [
        "namespace",
        "deployment",
        "service",
        "ingress",
        "horizontalpodautoscaler",
        "poddisruptionbudget",
        "configmap",
        "secret",
    ] {
        assert!(
            report.contains(&format!("passed for resource {kind}/")),
            "a {kind} was validated:\n{report}"
        );
    }
}

#[test]
fn the_dockerfile_is_hadolint_clean() {
    let output = run(Command::new(venv_tool("hadolint")).arg(deploy().join("Dockerfile")));
    assert_success("hadolint deploy/Dockerfile", &output);
}

/// The routes a deployment starts with are ones the hub accepts: compose's file, and the
/// one inside the Kubernetes ConfigMap (taken out with the venv's PyYAML, which
/// kubernetes-validate brings).
#[test]
fn the_shipped_routes_files_pass_the_hubs_check() {
    let dir = tempfile::tempdir().expect("can create a temporary dir");
    let from_configmap = dir.path().join("routes.yaml");
    let extract = run(Command::new(python())
        .args([
            "-c",
            "import sys, yaml\n\
             docs = yaml.safe_load_all(open(sys.argv[1]))\n\
             routes = next(d for d in docs if d['metadata']['name'] == 'switchyard-routes')\n\
             open(sys.argv[2], 'w').write(routes['data']['routes.yaml'])",
        ])
        .arg(deploy().join("k8s/config.yaml"))
        .arg(&from_configmap));
    assert_success("taking routes.yaml out of the ConfigMap", &extract);

    for file in [deploy().join("routes.yaml"), from_configmap] {
        let output = run(Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["routes", "check"])
            .arg(&file)
            .current_dir(dir.path()));
        assert_success(
            &format!("switchyard routes check {}", file.display()),
            &output,
        );
    }
}
