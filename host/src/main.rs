//! The `switchyard` command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use switchyard::config::Config;
use switchyard::routing;
use switchyard::runtime::{BUILTIN_PLUGINS, Plugin, Runtime, RuntimeConfig, World};
use switchyard::scaffold;
use switchyard::store::{Scope, Scopes, Store};
use switchyard::vault::{self, KeySource, Vault};

// The hub allocates many small short-lived buffers per notification; glibc's malloc spent
// a sixth of the hub's CPU in `switchyard bench`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Switchyard: an integration hub with sandboxed WebAssembly plugins.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the hub: the API, the router and the delivery workers.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Runs only these parts of the flow, comma-separated: api, router, worker.
        /// Overrides `roles` in the config. Default: all three.
        #[arg(long, value_delimiter = ',', value_name = "ROLES")]
        roles: Option<Vec<String>>,
    },
    /// Brings the store's schema up to date and says which migrations it applied. `serve`
    /// does this too at every start; this is for deploys that migrate first.
    Migrate {
        /// The store (`sqlite://PATH`, `postgres://...`); default: the configured one.
        #[arg(long, value_name = "URL")]
        store: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Measures the whole pipeline: sends N notifications through a real hub to a local
    /// receiver and reports throughput, latency and memory.
    Bench(switchyard::bench::BenchArgs),
    /// Measures the WebSocket front door: ingest over a few sockets, and fan-out of live
    /// events to many subscribers.
    BenchWs(switchyard::bench::ws::WsBenchArgs),
    /// Works with routes files.
    #[command(subcommand)]
    Routes(RoutesCommand),
    /// Manages API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manages channel secrets in the vault: set, list, rotate the master key.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Work with plugins: list the built-ins, check a component, start a new one.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Manages the admin console's users.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Adds an admin user. The password comes from SWITCHYARD_ADMIN_PASSWORD, or from the
    /// first line of standard input; never from the command line, where `ps` shows it.
    CreateUser {
        /// The new admin's username.
        username: String,
        /// Make up a strong password and print it once instead.
        #[arg(long)]
        generate_password: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Ends the lockout of a username after too many failed sign-ins, at once rather than
    /// when the failures age out, by forgetting its failed sign-ins.
    Unlock {
        /// The username, as typed at sign-in.
        username: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The config file (default: ./switchyard.yaml when it exists). `SWITCHYARD_*`
    /// variables override what it says.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(self.config.as_deref(), std::env::vars())?)
    }
}

#[derive(Subcommand)]
enum RoutesCommand {
    /// Checks a routes file offline and explains every problem with its line.
    Check {
        /// The routes file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Creates an API token in the hub's store and prints it. It is shown only once.
    Create {
        /// What the token is for.
        name: String,
        /// What the token may do: `send` (create notifications), `read` (notifications,
        /// deliveries, dead letters, live events), `admin` (plugins, routes, tokens,
        /// replays; includes `read`). Repeat for several. Default: send and read.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<Scope>,
        /// Confine the token to this tenant: it reaches only that tenant's endpoints,
        /// deliveries and sends.
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Lists the active API tokens with their scopes (never the tokens themselves).
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Revokes an API token. Running hubs refuse it within a second and close its sockets.
    Revoke {
        /// The token's id, as `token list` shows it.
        id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Seals a channel secret in the vault. The value is read from standard input (all of
    /// it, less one trailing newline), never from the command line, where `ps` shows it.
    Set {
        /// The channel, as named in the routes file.
        channel: String,
        /// The secret, as listed in the channel's `secrets: [...]`.
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Lists the secrets the routes take from the vault and the stored ones: whether each
    /// is set, its master key id and when it was set. Never their values.
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Re-seals every secret under a new master key and retires the old one. With the key
    /// file, the new key is generated and the old one kept as `<key file>.old-<key id>`.
    RotateKey {
        /// The new master key: read from FILE, or generated into it (0600) when FILE does
        /// not exist. Required when SWITCHYARD_MASTER_KEY holds the key, since the
        /// variable is then yours to change.
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Lists the built-in plugins and what each asks for.
    List,
    /// Tells whether FILE is a valid adapter or channel, and what it asks for.
    Check {
        /// A `.wasm` component.
        file: PathBuf,
    },
    /// Scaffolds a plugin project that builds into a valid component with one command.
    New {
        /// The plugin's name; also the project's directory name.
        name: String,
        /// Which world the plugin implements.
        #[arg(long, value_enum)]
        kind: Kind,
        /// The language to write it in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
        /// Where to create the crate (default: the current directory).
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// For Rust: the switchyard-sdk crate to depend on (default: the SDK this binary was built
        /// from, when it is still there).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Lang {
    Rust,
    Python,
    Js,
}

impl From<Lang> for scaffold::Lang {
    fn from(lang: Lang) -> scaffold::Lang {
        match lang {
            Lang::Rust => scaffold::Lang::Rust,
            Lang::Python => scaffold::Lang::Python,
            Lang::Js => scaffold::Lang::Js,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Adapter,
    Channel,
    Transform,
}

impl From<Kind> for World {
    fn from(kind: Kind) -> World {
        match kind {
            Kind::Adapter => World::Adapter,
            Kind::Channel => World::Channel,
            Kind::Transform => World::Transform,
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve { config, roles } => {
            let mut config = config.load()?;
            if let Some(roles) = roles {
                config.roles = switchyard::config::Roles::parse(&roles)
                    .map_err(|reason| anyhow::anyhow!("--roles: {reason}"))?;
            }
            tokio.block_on(switchyard::server::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { store, config } => {
            let url = match store {
                Some(url) => url,
                None => config.load()?.store_url(),
            };
            let shown = switchyard::bus::redacted(&url);
            let applied = tokio
                .block_on(Store::migrate(&url))
                .with_context(|| format!("could not migrate the store at {shown}"))?;
            if applied.is_empty() {
                println!("The store at {shown} is up to date.");
            } else {
                println!("Applied to the store at {shown}:");
                for migration in &applied {
                    println!("  {} {}", migration.version, migration.description);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            tokio.block_on(switchyard::bench::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchWs(args) => {
            tokio.block_on(switchyard::bench::ws::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Routes(RoutesCommand::Check { file }) => match routing::check_file(&file) {
            Ok(summary) => {
                println!("{summary}");
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => {
                eprintln!("{error}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Token(TokenCommand::Create {
            name,
            scopes,
            tenant,
            config,
        }) => {
            let config = config.load()?;
            tokio.block_on(async {
                let store = Store::open(&config.store_url()).await?;
                if let Some(tenant) = &tenant
                    && store.tenant(tenant).await?.is_none()
                {
                    store.close().await;
                    anyhow::bail!("no tenant has id `{tenant}`");
                }
                let token = store
                    .create_token(&name, Scopes::or_default(scopes), tenant.as_deref())
                    .await?;
                store.close().await;
                eprintln!(
                    "Created API token `{}` ({}) with scopes: {}. It is shown only this once:",
                    token.name, token.id, token.scopes
                );
                println!("{}", token.token);
                anyhow::Ok(ExitCode::SUCCESS)
            })
        }
        Command::Token(TokenCommand::Revoke { id, config }) => {
            let config = config.load()?;
            tokio.block_on(async {
                let store = Store::open(&config.store_url()).await?;
                let revoked = store.revoke_token(&id).await;
                store.close().await;
                if revoked? {
                    eprintln!("Revoked API token {id}.");
                    anyhow::Ok(ExitCode::SUCCESS)
                } else {
                    eprintln!("No active API token has id {id}.");
                    anyhow::Ok(ExitCode::FAILURE)
                }
            })
        }
        Command::Token(TokenCommand::List { config }) => {
            let config = config.load()?;
            tokio.block_on(async {
                let store = Store::open(&config.store_url()).await?;
                let tokens = store.active_tokens().await;
                store.close().await;
                println!("{:<36}  {:<17}  NAME", "ID", "SCOPES");
                for token in tokens? {
                    println!(
                        "{:<36}  {:<17}  {}",
                        token.id,
                        token.scopes.to_words(),
                        token.name
                    );
                }
                anyhow::Ok(ExitCode::SUCCESS)
            })
        }
        Command::Admin(AdminCommand::CreateUser {
            username,
            generate_password,
            config,
        }) => {
            let config = config.load()?;
            let password = if generate_password {
                switchyard::admin::users::generate_password()
            } else {
                read_password()?
            };
            tokio.block_on(async {
                let store = Store::open(&config.store_url()).await?;
                let created =
                    switchyard::admin::users::create_user(&store, &username, &password).await;
                store.close().await;
                created
            })?;
            eprintln!("Created admin `{username}`.");
            if generate_password {
                eprintln!("Its password is shown only this once:");
                println!("{password}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin(AdminCommand::Unlock { username, config }) => {
            let config = config.load()?;
            let forgotten = tokio.block_on(async {
                let store = Store::open(&config.store_url()).await?;
                let forgotten = switchyard::admin::users::unlock(&store, &username).await;
                store.close().await;
                anyhow::Ok(forgotten?)
            })?;
            if forgotten == 0 {
                eprintln!("`{username}` had no failed sign-ins; nothing to unlock.");
            } else {
                eprintln!("Unlocked `{username}`: forgot {forgotten} failed sign-ins.");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Secrets(command) => tokio.block_on(secrets(command)),
        Command::Plugin(PluginCommand::List) => tokio.block_on(list()),
        Command::Plugin(PluginCommand::Check { file }) => tokio.block_on(check(file)),
        Command::Plugin(PluginCommand::New {
            name,
            kind,
            lang,
            path,
            sdk,
        }) => {
            let lang = scaffold::Lang::from(lang);
            let dir = if lang == scaffold::Lang::Rust {
                let sdk = match sdk {
                    Some(sdk) => sdk,
                    None => scaffold::default_sdk_path().context(
                        "the SDK this binary was built from is gone; pass --sdk PATH to a \
                         switchyard-sdk checkout",
                    )?,
                };
                scaffold::create(&path, &name, kind.into(), &sdk)?
            } else {
                scaffold::create_interpreted(&path, &name, kind.into(), lang)?
            };
            let (command, artifact) = scaffold::build_command(lang, &name);
            println!("Created {}. Build it with:\n", dir.display());
            println!("    cd {} && {command}\n", dir.display());
            println!(
                "then check it with:\n\n    switchyard plugin check {}",
                dir.join(artifact).display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The new admin's password: SWITCHYARD_ADMIN_PASSWORD, else one line of standard input.
fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("SWITCHYARD_ADMIN_PASSWORD") {
        return Ok(password);
    }
    eprintln!("Password (one line on standard input):");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `switchyard secrets ...`: works on the store and the key file directly, so it needs no
/// running hub; a running one follows what it does.
async fn secrets(command: SecretsCommand) -> anyhow::Result<ExitCode> {
    match command {
        SecretsCommand::Set {
            channel,
            name,
            config,
        } => {
            let config = config.load()?;
            let value = read_secret_value(&channel, &name)?;
            let store = Store::open(&config.store_url()).await?;
            match routes_for_secrets(&config, &store).await {
                Ok(table) if !vault::is_declared(&table, &channel, &name) => eprintln!(
                    "warning: the routes in {} do not take `{name}` of channel `{channel}` \
                     from the vault; it is stored, but unused until the channel lists it in \
                     `secrets: [...]`",
                    config.routes_path().display()
                ),
                Ok(_) => {}
                Err(error) => eprintln!("warning: could not check the routes: {error:#}"),
            }
            let source = KeySource::from_env_or_file(config.master_key_path());
            let vault = Vault::open(store.clone(), source).await?;
            let set = vault.set(&channel, &name, &value).await;
            store.close().await;
            set?;
            eprintln!(
                "Sealed secret `{name}` of channel `{channel}` under master key {}. A running \
                 hub uses it within seconds.",
                vault.current_key_id()
            );
            Ok(ExitCode::SUCCESS)
        }
        SecretsCommand::List { config } => {
            let config = config.load()?;
            let store = Store::open(&config.store_url()).await?;
            let stored = store.channel_secrets_listing().await;
            let table = routes_for_secrets(&config, &store).await;
            store.close().await;
            let table = table.unwrap_or_else(|error| {
                eprintln!("warning: could not read the routes, so only stored secrets are listed: {error:#}");
                routing::RouteTable::empty()
            });
            let statuses = vault::secret_statuses(&table, stored?);
            if statuses.is_empty() {
                eprintln!("No channel takes secrets from the vault, and none are stored.");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<24} {:<24} {:<10} {:<9} updated",
                "channel", "secret", "status", "key"
            );
            for status in statuses {
                let state = match (status.set, status.declared) {
                    (true, true) => "set",
                    (false, _) => "not set",
                    (true, false) => "unused",
                };
                let updated = status
                    .updated_at
                    .map(|ms| {
                        let at = std::time::UNIX_EPOCH
                            + std::time::Duration::from_millis(ms.max(0) as u64);
                        humantime::format_rfc3339_seconds(at).to_string()
                    })
                    .unwrap_or_default();
                println!(
                    "{:<24} {:<24} {:<10} {:<9} {updated}",
                    status.channel,
                    status.name,
                    state,
                    status.key_id.as_deref().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SecretsCommand::RotateKey {
            new_key_file,
            config,
        } => {
            let config = config.load()?;
            let source = KeySource::from_env_or_file(config.master_key_path());
            let new_key = match &new_key_file {
                Some(path) => {
                    let (key, created) = vault::load_or_create_key_file(path)?;
                    if created {
                        eprintln!(
                            "Wrote a new master key ({}) to {}.",
                            key.id(),
                            path.display()
                        );
                    }
                    Some(key)
                }
                None => None,
            };
            let store = Store::open(&config.store_url()).await?;
            let rotated = async {
                let vault = Vault::open(store.clone(), source.clone()).await?;
                vault.rotate(new_key).await
            }
            .await;
            store.close().await;
            let rotation = rotated?;
            println!(
                "Re-sealed {} secret(s) under master key {}.",
                rotation.resealed, rotation.new_key_id
            );
            match (&source, &new_key_file) {
                (KeySource::File(path), _) => {
                    println!(
                        "{} now holds key {} alone; a running hub follows it by itself.",
                        path.display(),
                        rotation.new_key_id
                    );
                    for kept in &rotation.retired_files {
                        println!(
                            "The retired key is kept in {}: it opens only database backups \
                             taken before now. Delete it when no such backup is needed.",
                            kept.display()
                        );
                    }
                }
                (KeySource::Env(_), Some(path)) => println!(
                    "Set {} to the key in {} (key id {}) before the hub next starts: the \
                     stored secrets no longer open with the old key. A running hub retries \
                     deliveries that need them until it restarts with the new key.",
                    vault::MASTER_KEY_ENV,
                    path.display(),
                    rotation.new_key_id
                ),
                (KeySource::Env(_), None) => unreachable!("the vault refuses this rotation"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A secret's value from standard input: everything, less one trailing newline, so
/// `printf`, `echo` and `< file` all work.
fn read_secret_value(channel: &str, name: &str) -> anyhow::Result<String> {
    use std::io::{IsTerminal as _, Read as _};
    let mut stdin = std::io::stdin();
    let mut value = String::new();
    if stdin.is_terminal() {
        eprintln!(
            "Value of secret `{name}` of channel `{channel}` (one line; the terminal shows it, \
             so prefer piping it in):"
        );
        stdin.read_line(&mut value)
    } else {
        stdin.read_to_string(&mut value)
    }
    .context("reading the secret's value from standard input")?;
    let value = value.strip_suffix('\n').unwrap_or(&value);
    let value = value.strip_suffix('\r').unwrap_or(value);
    anyhow::ensure!(!value.is_empty(), "no value on standard input");
    Ok(value.to_owned())
}

/// The routes in force, checked against the plugins this hub has (uploads included).
async fn routes_for_secrets(config: &Config, store: &Store) -> anyhow::Result<routing::RouteTable> {
    let runtime = Runtime::new(config.runtime_config())?;
    let plugins = switchyard::plugins::Plugins::open(runtime, store.clone()).await?;
    Ok(routing::RouteTable::load(&config.routes_path(), &plugins)?)
}

async fn list() -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(RuntimeConfig::default())?;
    println!("{:<18} {:<8} {:<9} asks for", "name", "world", "version");
    for (name, _, _) in BUILTIN_PLUGINS {
        let plugin = runtime.load_builtin(name).await?;
        println!(
            "{:<18} {:<8} {:<9} {}",
            name,
            plugin.world().to_string(),
            plugin.info().version,
            plugin.manifest().host_functions.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(file: PathBuf) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match runtime.load(&name, &bytes).await {
        Ok(plugin) => {
            describe(&file, &plugin);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!("{}: not a valid Switchyard plugin: {error}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn describe(file: &std::path::Path, plugin: &Plugin) {
    let manifest = plugin.manifest();
    let info = plugin.info();
    println!(
        "{}: a valid {} for switchyard:plugin@{}",
        file.display(),
        manifest.world,
        manifest.contract_version
    );
    println!("  name:        {} {}", info.name, info.version);
    println!("  description: {}", info.description);
    println!("  size:        {} bytes", manifest.size_bytes);
    println!("  asks for:");
    for function in &manifest.host_functions {
        println!("    host.{function:<8} {}", scaffold::explain(function));
    }
    if !manifest.wasi_interfaces.is_empty() {
        println!(
            "  WASI (sandboxed: no files, sockets, environment or clock): {}",
            manifest.wasi_interfaces.join(", ")
        );
    }
}
