//! The `switchyard` command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use switchyard::config::Config;
use switchyard::routing;
use switchyard::runtime::{BUILTIN_PLUGINS, Plugin, Runtime, RuntimeConfig, World};
use switchyard::scaffold;
use switchyard::store::Store;

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
    },
    /// Measures the whole pipeline: sends N notifications through a real hub to a local
    /// receiver and reports throughput, latency and memory.
    Bench(switchyard::bench::BenchArgs),
    /// Works with routes files.
    #[command(subcommand)]
    Routes(RoutesCommand),
    /// Manages API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Work with plugins: list the built-ins, check a component, start a new one.
    #[command(subcommand)]
    Plugin(PluginCommand),
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
    /// Scaffolds a plugin crate that builds into a valid component.
    New {
        /// The plugin's name; also the crate's directory name.
        name: String,
        /// Which world the plugin implements.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Where to create the crate (default: the current directory).
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// The switchyard-sdk crate to depend on (default: the SDK this binary was built
        /// from, when it is still there).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Adapter,
    Channel,
}

impl From<Kind> for World {
    fn from(kind: Kind) -> World {
        match kind {
            Kind::Adapter => World::Adapter,
            Kind::Channel => World::Channel,
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
        Command::Serve { config } => {
            let config = config.load()?;
            tokio.block_on(switchyard::server::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            tokio.block_on(switchyard::bench::run(args))?;
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
        Command::Token(TokenCommand::Create { name, config }) => {
            let config = config.load()?;
            tokio.block_on(async {
                let store = Store::open(&config.store_url()).await?;
                let token = store.create_token(&name).await?;
                store.close().await;
                eprintln!(
                    "Created API token `{}` ({}). It is shown only this once:",
                    token.name, token.id
                );
                println!("{}", token.token);
                anyhow::Ok(ExitCode::SUCCESS)
            })
        }
        Command::Plugin(PluginCommand::List) => tokio.block_on(list()),
        Command::Plugin(PluginCommand::Check { file }) => tokio.block_on(check(file)),
        Command::Plugin(PluginCommand::New {
            name,
            kind,
            path,
            sdk,
        }) => {
            let sdk = match sdk {
                Some(sdk) => sdk,
                None => scaffold::default_sdk_path().context(
                    "the SDK this binary was built from is gone; pass --sdk PATH to a \
                     switchyard-sdk checkout",
                )?,
            };
            let dir = scaffold::create(&path, &name, kind.into(), &sdk)?;
            println!("Created {}. Build it with:\n", dir.display());
            println!("    cd {} && cargo build --release\n", dir.display());
            println!(
                "then check it with:\n\n    switchyard plugin check {}",
                dir.join(scaffold::artifact_path(&name)).display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
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
