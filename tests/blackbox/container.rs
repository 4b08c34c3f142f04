//! The container image, built from `deploy/Dockerfile` with podman and run the way
//! `deploy/k8s` runs it: as its non-root user, with a volume for the data dir, and config
//! from environment variables.
//!
//! No Docker engine runs on these machines and no registry answers, so:
//! - `scripts/test.sh` makes the base image from Debian's packages with debootstrap
//!   ([`BASE_IMAGE`]), once; it is kept between runs;
//! - the image takes the binary these tests run, built on the host, through the
//!   Dockerfile's `prebuilt` target (a stripped copy, so the image is not 700 MB of debug
//!   info);
//! - podman runs with runc and cgroupfs on the host's network, which is how the containers
//!   reach the receivers, PostgreSQL, RabbitMQ and Redis on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::brokers::{Backbone, RABBITMQ, RABBITMQ_URL, REDIS_URL};
use crate::support::{Answer, READY_TIMEOUT, Receiver, eventually, free_port, one_hook};

/// The base image `scripts/test.sh` makes with debootstrap.
const BASE_IMAGE: &str = "localhost/switchyard-base:bookworm";
/// The image these tests build.
const IMAGE: &str = "localhost/switchyard:blackbox";
/// The image's user, data dir and port, as the Dockerfile and the manifests have them.
pub(crate) const USER_ID: &str = "10001";
pub(crate) const DATA_DIR: &str = "/var/lib/switchyard";
pub(crate) const ROUTES_PATH: &str = "/etc/switchyard/routes.yaml";
/// The longest a container may take to stop after SIGTERM: the hub's default
/// `delivery.shutdown_grace`. Kubernetes gives it 45 s (`terminationGracePeriodSeconds`).
const STOP_GRACE: Duration = Duration::from_secs(30);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository root exists")
}

/// `podman` as these machines run it: runc (crun fails on hybrid cgroups) and cgroupfs.
fn podman(args: &[&str]) -> Command {
    let mut command = Command::new("podman");
    command
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .args(args)
        .stdin(Stdio::null());
    command
}

fn output(mut command: Command) -> Output {
    command.output().unwrap_or_else(|e| {
        panic!("cannot run {command:?} (is podman installed? scripts/test.sh installs it): {e}")
    })
}

/// Runs `podman args`; panics with what it printed unless it succeeds; returns its stdout.
fn podman_ok(args: &[&str]) -> String {
    let done = output(podman(args));
    assert!(
        done.status.success(),
        "podman {args:?} failed ({}):\n{}{}",
        done.status,
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    String::from_utf8_lossy(&done.stdout).into_owned()
}

/// Builds [`IMAGE`] once per test run; its size in bytes.
async fn image() -> u64 {
    static BUILT: OnceCell<u64> = OnceCell::const_new();
    *BUILT
        .get_or_init(|| async {
            tokio::task::spawn_blocking(build_image)
                .await
                .expect("the image build ran")
        })
        .await
}

fn build_image() -> u64 {
    let base = output(podman(&["image", "exists", BASE_IMAGE]));
    assert!(
        base.status.success(),
        "no base image {BASE_IMAGE}: scripts/test.sh makes it with debootstrap"
    );
    let context = tempfile::tempdir().expect("a build context dir");
    let binary = context.path().join("switchyard");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&binary)
        .arg(env!("CARGO_BIN_EXE_switchyard"))
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(env!("CARGO_BIN_EXE_switchyard"), &binary).expect("can copy the binary");
    }
    let started = Instant::now();
    let repository = repository();
    podman_ok(&[
        "build",
        "--format",
        "docker",
        "--file",
        &repository.join("deploy/Dockerfile").to_string_lossy(),
        "--target",
        "prebuilt",
        "--build-arg",
        &format!("BASE_IMAGE={BASE_IMAGE}"),
        "--build-context",
        &format!("binary={}", context.path().display()),
        "--network=host",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--tag",
        IMAGE,
        &repository.to_string_lossy(),
    ]);
    // The build before this one left its image untagged.
    let _ = output(podman(&["image", "prune", "--force"]));
    let size: u64 = podman_ok(&["image", "inspect", "--format", "{{.Size}}", IMAGE])
        .trim()
        .parse()
        .expect("podman prints the image size");
    println!(
        "image {IMAGE}: {:.1} MB, built in {:.1} s (the binary: {:.1} MB, a stripped debug build)",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&binary).map_or(0, |m| m.len()) as f64 / 1e6
    );
    size
}

/// A container of [`IMAGE`], removed with its volume when dropped.
struct Container {
    name: String,
    volume: String,
    port: u16,
    /// The routes file it mounts read-only at [`ROUTES_PATH`], as the ConfigMap is.
    routes: tempfile::TempDir,
    client: reqwest::Client,
}

impl Container {
    /// A fresh volume and routes file for a container called `name`; nothing runs yet.
    fn new(name: &str, routes: &str) -> Container {
        let name = format!("{name}-{:08x}", rand::random::<u32>());
        let volume = format!("{name}-data");
        podman_ok(&["volume", "create", &volume]);
        let dir = tempfile::tempdir().expect("a dir for the routes file");
        let routes_file = dir.path().join("routes.yaml");
        std::fs::write(&routes_file, routes).expect("can write the routes file");
        // The container's user (not this one) reads it through the bind mount.
        std::fs::set_permissions(
            &routes_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .expect("can make the routes file readable");
        Container {
            name,
            volume,
            port: free_port(),
            routes: dir,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
        }
    }

    /// `podman run` arguments shared by every run of this container's image: the host's
    /// network, the ulimits these machines permit, the volume, the routes, the config.
    fn run_args(&self, env: &[(&str, String)]) -> Vec<String> {
        // The manifests' securityContext too: a read-only root (podman puts a tmpfs on
        // /tmp, as their emptyDir), no capabilities, no privilege escalation.
        let mut args: Vec<String> = [
            "run",
            "--network=host",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--read-only",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
        ]
        .map(String::from)
        .into();
        args.push("--volume".into());
        args.push(format!("{}:{DATA_DIR}", self.volume));
        args.push("--volume".into());
        args.push(format!(
            "{}:{ROUTES_PATH}:ro",
            self.routes.path().join("routes.yaml").display()
        ));
        let mut all_env = vec![
            ("SWITCHYARD_LISTEN", format!("127.0.0.1:{}", self.port)),
            ("SWITCHYARD_ROUTES", ROUTES_PATH.to_owned()),
            // The receivers are on this machine's loopback.
            ("SWITCHYARD_PLUGINS__ALLOW_LOOPBACK", "true".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        all_env.extend(env.iter().cloned());
        for (name, value) in all_env {
            args.push("--env".into());
            args.push(format!("{name}={value}"));
        }
        args
    }

    /// Runs `switchyard ARGS` in a one-off container on this container's volume and
    /// config; its stdout.
    fn once(&self, env: &[(&str, String)], switchyard_args: &[&str]) -> String {
        let mut args = self.run_args(env);
        args.insert(1, "--rm".into());
        args.push(IMAGE.into());
        args.extend(switchyard_args.iter().map(|a| a.to_string()));
        podman_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A token with every scope, made by `switchyard token create` in the image.
    fn token(&self, env: &[(&str, String)]) -> String {
        let printed = self.once(
            env,
            &[
                "token", "create", "blackbox", "--scope", "send", "--scope", "read", "--scope",
                "admin",
            ],
        );
        printed
            .lines()
            .rev()
            .find(|line| line.starts_with("sy_"))
            .unwrap_or_else(|| panic!("`token create` printed no token:\n{printed}"))
            .to_owned()
    }

    /// Starts `switchyard serve` (the image's default command) detached.
    fn start(&self, env: &[(&str, String)]) {
        let mut args = self.run_args(env);
        args.insert(1, "--detach".into());
        args.insert(2, "--name".into());
        args.insert(3, self.name.clone());
        args.push(IMAGE.into());
        podman_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Answer::of(request).await
    }

    /// Waits until `/healthz` and `/readyz` answer 200.
    async fn wait_ready(&self) {
        for path in ["/healthz", "/readyz"] {
            eventually(
                READY_TIMEOUT,
                &format!("{path} of {}", self.name),
                || async {
                    let answer = self.client.get(self.url(path)).send().await.ok()?;
                    (answer.status() == 200).then_some(())
                },
            )
            .await;
        }
    }

    /// `podman exec`: runs `args` in the running container, as its user.
    fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        podman_ok(&all)
    }

    /// SIGTERM (`podman stop`, which kills only after [`STOP_GRACE`]); how long the
    /// container took to exit, and its exit code.
    fn stop(&self) -> (Duration, i64) {
        let started = Instant::now();
        podman_ok(&[
            "stop",
            "--time",
            &STOP_GRACE.as_secs().to_string(),
            &self.name,
        ]);
        let took = started.elapsed();
        let code = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", &self.name]);
        (took, code.trim().parse().expect("an exit code"))
    }

    fn logs(&self) -> String {
        let done = output(podman(&["logs", &self.name]));
        format!(
            "{}{}",
            String::from_utf8_lossy(&done.stdout),
            String::from_utf8_lossy(&done.stderr)
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("==== container {} ====\n{}", self.name, self.logs());
        }
        let _ = output(podman(&["rm", "--force", "--time", "0", &self.name]));
        let _ = output(podman(&["volume", "rm", "--force", &self.volume]));
    }
}

/// Sends one notification through `container`'s API; its id.
async fn send(container: &Container, token: &str, kind: &str) -> String {
    let answer = Answer::of(
        container
            .client
            .post(container.url("/api/v1/notifications"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(json!({"kind": kind, "payload": {"from": "a container test"}}).to_string()),
    )
    .await;
    assert_eq!(answer.status, 202, "{answer}");
    answer.json()["id"].as_str().expect("an id").to_owned()
}

/// Asserts a container stopped on SIGTERM, cleanly and within the grace period.
fn assert_stops_cleanly(container: &Container) {
    let (took, code) = container.stop();
    println!(
        "{} stopped on SIGTERM in {took:.1?} with exit code {code}",
        container.name
    );
    assert_eq!(
        code,
        0,
        "{} exits 0 on SIGTERM:\n{}",
        container.name,
        container.logs()
    );
    assert!(
        took < STOP_GRACE,
        "{} took {took:?} to stop",
        container.name
    );
    assert!(
        container.logs().contains("shut down"),
        "{} says it shut down:\n{}",
        container.name,
        container.logs()
    );
}

/// The embedded default in the image: SQLite and the vault key in the volume, as its user.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_image_serves_the_embedded_default_as_its_own_user() {
    let size = image().await;
    assert!(size > 0);
    let receiver = Receiver::start().await;
    let container = Container::new(
        "switchyard-embedded",
        &one_hook(&receiver.url("/hook"), "[100ms]", ""),
    );
    let env = [];
    let token = container.token(&env);
    container.start(&env);
    container.wait_ready().await;

    // Its user, and the files it made in the volume.
    assert_eq!(container.exec(&["id", "-u"]).trim(), USER_ID);
    let owners = container.exec(&[
        "stat",
        "-c",
        "%u %a %n",
        DATA_DIR,
        &format!("{DATA_DIR}/switchyard.db"),
    ]);
    for line in owners.lines() {
        assert!(
            line.starts_with(&format!("{USER_ID} ")),
            "owned by the image's user: {owners}"
        );
    }

    // A notification, delivered to a receiver on the host.
    let id = send(&container, &token, "container.hello").await;
    let received = receiver.wait_for(1).await;
    assert_eq!(received[0].webhook_id(), id);
    assert!(received[0].signature_is_valid());

    // The other commands work inside the image too.
    let migrated = container.exec(&["switchyard", "migrate"]);
    println!("switchyard migrate in the container: {}", migrated.trim());
    container.exec(&["switchyard", "routes", "check", ROUTES_PATH]);

    assert_stops_cleanly(&container);
}

/// The image against the machine's PostgreSQL, RabbitMQ and Redis, with the `api` role in
/// one container and `router,worker` in another, as the two Deployments run it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_image_runs_api_and_workers_apart_on_the_machines_services() {
    image().await;
    let _rabbitmq = RABBITMQ.read().await;
    let backbone = Backbone::fresh().await;
    let receiver = Receiver::start().await;
    let routes = one_hook(&receiver.url("/hook"), "[100ms]", "");
    let master_key = "c3dpdGNoeWFyZC1jb250YWluZXItdGVzdC1rZXktMzI=";
    let shared = |roles: &str| -> Vec<(&'static str, String)> {
        vec![
            ("SWITCHYARD_ROLES", roles.to_owned()),
            ("SWITCHYARD_STORE__URL", backbone.store_url()),
            ("SWITCHYARD_QUEUES__URL", RABBITMQ_URL.to_owned()),
            ("SWITCHYARD_QUEUES__PREFIX", backbone.prefix.clone()),
            ("SWITCHYARD_REDIS__URL", REDIS_URL.to_owned()),
            ("SWITCHYARD_ADMIN__SESSIONS", REDIS_URL.to_owned()),
            ("SWITCHYARD_MASTER_KEY", master_key.to_owned()),
        ]
    };
    let api = Container::new("switchyard-api", &routes);
    let workers = Container::new("switchyard-workers", &routes);
    let token = api.token(&shared("api"));
    api.start(&shared("api"));
    workers.start(&shared("router,worker"));
    api.wait_ready().await;
    workers.wait_ready().await;

    // The worker process serves only its health checks.
    let refused = workers.get("/api/v1/notifications", Some(&token)).await;
    assert_eq!(refused.status, 404, "{refused}");

    let id = send(&api, &token, "container.split").await;
    let received = receiver.wait_for(1).await;
    assert_eq!(received[0].webhook_id(), id);
    let notification: Value = eventually(
        crate::support::DEADLINE,
        "the delivery recorded",
        || async {
            let answer = api
                .get(&format!("/api/v1/notifications/{id}"), Some(&token))
                .await;
            let body = answer.json();
            (body["deliveries"][0]["state"] == "delivered").then_some(body)
        },
    )
    .await;
    assert_eq!(
        notification["deliveries"][0]["attempts"], 1,
        "{notification}"
    );

    assert_stops_cleanly(&workers);
    assert_stops_cleanly(&api);
}
