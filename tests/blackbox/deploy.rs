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

/// The Kubernetes manifests run the image the way `container.rs` proved it runs: the
/// Dockerfile's user, port, data dir and command, the health paths, the routes file's path,
/// and an image tagged with this version.
#[test]
fn the_kubernetes_manifests_agree_with_the_dockerfile() {
    use crate::container::{DATA_DIR, ROUTES_PATH, USER_ID};

    let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).expect("a Dockerfile");
    let line = |instruction: &str| -> String {
        let found: Vec<&str> = dockerfile
            .lines()
            .filter_map(|l| l.strip_prefix(instruction))
            .collect();
        assert_eq!(found.len(), 1, "one {instruction}line in the Dockerfile");
        found[0].trim().to_owned()
    };
    assert_eq!(line("USER "), format!("{USER_ID}:{USER_ID}"));
    assert_eq!(line("EXPOSE "), "8080");
    assert_eq!(line("VOLUME "), format!("[\"{DATA_DIR}\"]"));
    assert_eq!(line("CMD "), "[\"serve\"]");
    assert!(dockerfile.contains(&format!("SWITCHYARD_DATA_DIR={DATA_DIR}")));
    assert!(dockerfile.contains("SWITCHYARD_LISTEN=0.0.0.0:8080"));

    // Every document of every manifest, as JSON, through the venv's PyYAML.
    let dump = run(Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml\n\
             docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]\n\
             print(json.dumps(docs))",
        ])
        .args(manifests()));
    assert_success("reading the manifests", &dump);
    let docs: serde_json::Value =
        serde_json::from_slice(&dump.stdout).expect("the manifests as JSON");
    let docs = docs.as_array().expect("a list of documents");

    let env = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "switchyard-env")
        .expect("the switchyard-env ConfigMap");
    assert_eq!(env["data"]["SWITCHYARD_LISTEN"], "0.0.0.0:8080");
    assert_eq!(env["data"]["SWITCHYARD_ROUTES"], ROUTES_PATH);

    let deployments: Vec<&serde_json::Value> =
        docs.iter().filter(|d| d["kind"] == "Deployment").collect();
    assert_eq!(deployments.len(), 2, "the api and worker Deployments");
    let user: u32 = USER_ID.parse().expect("a number");
    for deployment in deployments {
        let name = deployment["metadata"]["name"].as_str().unwrap_or("?");
        let pod = &deployment["spec"]["template"]["spec"];
        let security = &pod["securityContext"];
        assert_eq!(security["runAsUser"], user, "{name}");
        assert_eq!(security["runAsGroup"], user, "{name}");
        assert_eq!(security["runAsNonRoot"], true, "{name}");
        let container = &pod["containers"][0];
        assert_eq!(
            container["image"],
            format!(
                "registry.example.com/switchyard:{}",
                env!("CARGO_PKG_VERSION")
            ),
            "{name}: the image of this version"
        );
        assert_eq!(container["args"], serde_json::json!(["serve"]), "{name}");
        assert_eq!(container["ports"][0]["containerPort"], 8080, "{name}");
        assert_eq!(container["ports"][0]["name"], "http", "{name}");
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            assert_eq!(container[probe]["httpGet"]["path"], path, "{name} {probe}");
            assert_eq!(
                container[probe]["httpGet"]["port"], "http",
                "{name} {probe}"
            );
        }
        let mounts = container["volumeMounts"].as_array().expect("mounts");
        let mount = |path: &str| mounts.iter().find(|m| m["mountPath"] == path);
        assert!(mount(DATA_DIR).is_some(), "{name} mounts the data dir");
        assert!(
            mount("/tmp").is_some(),
            "{name} gives the read-only root a /tmp"
        );
        let routes_dir = ROUTES_PATH.rsplit_once('/').map(|(dir, _)| dir).unwrap();
        assert!(mount(routes_dir).is_some(), "{name} mounts the routes");
        assert_eq!(
            container["securityContext"]["readOnlyRootFilesystem"], true,
            "{name}: the container test runs the image read-only too"
        );
    }
}
