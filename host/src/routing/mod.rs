//! The route table: which inbound sources exist, which delivery channels exist, and which
//! channels each notification goes to. It is written by hand in YAML:
//!
//! ```yaml
//! sources:                        # inbound webhook sources, served at /hooks/{name}
//!   shop:
//!     adapter: webhook-standard   # an installed adapter plugin
//!     secret: ${SHOP_WEBHOOK_SECRET}   # shorthand for `secrets: { secret: ... }`
//! channels:
//!   ops-webhook:
//!     plugin: webhook             # an installed channel plugin
//!     config: { url: "https://ops.example.com/hooks" }   # any mapping, handed to the plugin
//!     secrets: { signing_key: "${OPS_SIGNING_KEY}" }     # name -> value, or
//!     # secrets: [signing_key]    # names whose values the vault keeps
//!     allowed_hosts: ["ops.example.com"]                 # hosts the plugin may fetch
//!     retry: { schedule: [5s, 5m, 30m, 2h, 5h, 10h, 10h] }
//!     rate_limit: 50/s            # or 3000/m, 10/h
//!     concurrency: 16             # calls in flight at most
//! routes:
//!   - name: paging
//!     match: { kind: "incident.*", attributes: { severity: critical } }
//!     to: [ops-webhook]
//! ```
//!
//! - Names of sources, channels and routes are 1 to 64 characters of `a-z`, `0-9`, `-` and
//!   `_`, starting with a letter or a digit; route names are unique.
//! - `${VAR}` and `${VAR:-default}` in any value are read from the environment when the file
//!   is loaded; `$${` is a literal `${`. A variable that is unset without a default is an
//!   error. A channel's `secrets` map each name to its value, given this way; or list
//!   names only (`secrets: [signing_key]`), whose values are kept encrypted in the vault
//!   (`switchyard secrets set CHANNEL NAME`, see [`crate::vault`]) and read at delivery.
//!   Sources take secrets by value only.
//! - `retry.schedule` lists the delays before each retry; the first attempt is immediate.
//!   Without `retry` a channel uses [`DEFAULT_RETRY_SCHEDULE`] (8 attempts in all);
//!   `schedule: []` means a single attempt.
//! - A route matches when the notification's kind matches `match.kind` (a glob: `*` is any
//!   run of characters, dots included, `?` one character; default `*`) and, for every
//!   entry of `match.attributes`, the notification has that attribute with that value, or
//!   one of the values when a list is given.
//! - Every matching route contributes its channels: fan-out, not first match. A channel
//!   named by several matching routes gets the notification once.
//!
//! A file is checked whole before it is used, and every problem is reported with its line;
//! [`LiveRoutes`] keeps serving the last good table when an edited file is refused.

mod catalog;
pub mod endpoints;
mod glob;
mod live;
mod read;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use crate::yaml::Problem;
pub use catalog::{BuiltinCatalog, PluginCatalog};
pub use glob::KindPattern;
pub use live::LiveRoutes;
pub(crate) use read::{is_valid_name, is_valid_secret_name};

/// The routes file written on first start when there is none.
pub const SAMPLE: &str = include_str!("sample.yaml");

/// The delays before retries 1 to 7 when a channel sets no `retry`: about a day in all,
/// long enough to ride out a receiver's bad night.
pub const DEFAULT_RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// A checked route table. Cheap to share as `Arc<RouteTable>`; [`LiveRoutes`] swaps in a
/// new one when the file changes.
///
/// It serializes as written: sources, channels and routes with every value that read a
/// `${VAR}` shown as `${VAR}`, and secrets by name only. Messages about a file quote it
/// the same way. The values themselves reach only the plugins.
#[derive(Debug, Clone)]
pub struct RouteTable {
    origin: String,
    text: String,
    sources: BTreeMap<String, SourceSpec>,
    transforms: BTreeMap<String, TransformSpec>,
    channels: BTreeMap<String, ChannelSpec>,
    routes: Vec<Route>,
    warnings: Vec<String>,
    /// The table as it serializes.
    shown: serde_json::Value,
}

impl Serialize for RouteTable {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.shown.serialize(serializer)
    }
}

/// An inbound source, served at `/hooks/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceSpec {
    /// The adapter plugin that turns its requests into notifications.
    pub adapter: String,
    /// The adapter's `config`, as JSON; `{}` when not given.
    pub config: serde_json::Value,
    /// Secret name to value. Serialized as the names only.
    #[serde(serialize_with = "secret_names")]
    pub secrets: BTreeMap<String, String>,
    /// The hosts the adapter may reach with `fetch`.
    pub allowed_hosts: Vec<String>,
}

/// The most transforms one route or one channel may name.
pub const MAX_TRANSFORMS: usize = 16;

/// A transform under `transforms:`: a transform plugin with its settings. A list may also
/// name a transform plugin directly, which then runs with no config.
#[derive(Debug, Clone, Serialize)]
pub struct TransformSpec {
    /// The transform plugin.
    pub plugin: String,
    /// The plugin's `config`, as JSON; `{}` when not given.
    pub config: serde_json::Value,
    /// Secret name to value. Serialized as the names only.
    #[serde(serialize_with = "secret_names")]
    pub secrets: BTreeMap<String, String>,
    /// The hosts the plugin may reach with `fetch`.
    pub allowed_hosts: Vec<String>,
    /// The above as the runtime hands them to the plugin, made once per table so a call
    /// costs no copy.
    #[serde(skip)]
    pub grants: Arc<crate::runtime::Grants>,
}

impl TransformSpec {
    /// Transform plugin `plugin` with no config, secrets or hosts.
    pub fn bare(plugin: &str) -> TransformSpec {
        TransformSpec::new(
            plugin.to_owned(),
            serde_json::json!({}),
            BTreeMap::new(),
            Vec::new(),
        )
    }

    fn new(
        plugin: String,
        config: serde_json::Value,
        secrets: BTreeMap<String, String>,
        allowed_hosts: Vec<String>,
    ) -> TransformSpec {
        let grants = Arc::new(crate::runtime::Grants {
            config: config.clone(),
            secrets: secrets.clone().into_iter().collect(),
            allowed_hosts: allowed_hosts.clone(),
        });
        TransformSpec {
            plugin,
            config,
            secrets,
            allowed_hosts,
            grants,
        }
    }
}

/// A delivery channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelSpec {
    /// The channel plugin that delivers.
    pub plugin: String,
    /// The plugin's `config`, as JSON; `{}` when not given.
    pub config: serde_json::Value,
    /// Secret name to where its value comes from. Serialized as the names only.
    #[serde(serialize_with = "secret_names")]
    pub secrets: BTreeMap<String, SecretSource>,
    /// The hosts the plugin may reach with `fetch`, lowercased.
    pub allowed_hosts: Vec<String>,
    /// The delays before retry 1, 2, ...; the first attempt is immediate, so a delivery
    /// gets `retry_schedule.len() + 1` attempts.
    #[serde(rename = "retry_schedule", serialize_with = "durations")]
    pub retry_schedule: Vec<Duration>,
    /// At most this many calls per period, when set.
    pub rate_limit: Option<RateLimit>,
    /// At most this many calls in flight, when set; else the config's default.
    pub concurrency: Option<u32>,
    /// The transforms that run before this channel, after the route's, in order.
    #[serde(serialize_with = "arc_strs")]
    pub transform: Vec<Arc<str>>,
}

impl ChannelSpec {
    /// The names of the secrets this channel reads from the vault.
    pub fn vault_secrets(&self) -> impl Iterator<Item = &str> {
        self.secrets
            .iter()
            .filter(|(_, source)| matches!(source, SecretSource::Vault))
            .map(|(name, _)| name.as_str())
    }
}

/// Where a channel's secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Its value, written in the routes file (usually as `${ENV_VAR}`, already read).
    /// Never shown: a table serializes its secrets by name.
    Given(String),
    /// The vault, which opens it at delivery (`secrets: [name]`).
    Vault,
    /// The vault, when it holds one; otherwise the plugin does without (an endpoint's
    /// rotated-out signing secret, destroyed when its grace ends).
    VaultIfSet,
}

/// `count` calls per `per`, written `50/s`, `3000/m` or `10/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// How many calls, at least 1.
    pub count: u32,
    /// In what period: one second, minute or hour.
    pub per: Duration,
}

impl RateLimit {
    /// Reads `50/s`, `3000/m` or `10/h`; the count is at least 1.
    pub fn parse(text: &str) -> Option<RateLimit> {
        let (count, unit) = text.split_once('/')?;
        let count: u32 = count.trim().parse().ok().filter(|n| *n > 0)?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        Some(RateLimit { count, per })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            3600 => "h",
            60 => "m",
            _ => "s",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl Serialize for RateLimit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One route: which notifications, and where they go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// Its unique name, recorded with every delivery it causes.
    #[serde(serialize_with = "arc_str")]
    pub name: Arc<str>,
    /// Which notifications it takes.
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    /// The channels it sends to, in order, each defined in the table.
    #[serde(serialize_with = "arc_strs")]
    pub to: Vec<Arc<str>>,
    /// The transforms that run before each of its channels (and before the channel's own).
    #[serde(serialize_with = "arc_strs")]
    pub transform: Vec<Arc<str>>,
}

/// A route's `match`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteMatch {
    /// The kind pattern.
    pub kind: KindPattern,
    /// Attribute name to the values accepted (any of them).
    pub attributes: BTreeMap<String, Vec<String>>,
}

impl RouteMatch {
    /// Whether a notification of `kind` with `attributes` matches.
    pub fn matches<K: AsRef<str>, V: AsRef<str>>(&self, kind: &str, attributes: &[(K, V)]) -> bool {
        self.kind.matches(kind)
            && self.attributes.iter().all(|(name, accepted)| {
                attributes.iter().any(|(key, value)| {
                    key.as_ref() == name && accepted.iter().any(|a| a == value.as_ref())
                })
            })
    }
}

/// One delivery to make: the channel, and the route that chose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The first matching route that named the channel.
    #[serde(serialize_with = "arc_str")]
    pub route: Arc<str>,
    /// The channel.
    #[serde(serialize_with = "arc_str")]
    pub channel: Arc<str>,
}

impl RouteTable {
    /// Reads and checks a routes file's `text`. `origin` names the file in messages; `env`
    /// answers `${VAR}`; `plugins` says which plugins are installed. Every problem found is
    /// returned, each with its line.
    pub fn parse(
        text: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
        plugins: &dyn PluginCatalog,
    ) -> Result<RouteTable, RoutesError> {
        RouteTable::read(text, origin, read::Env::Values(env), plugins)
    }

    /// Checks a file someone submitted (to validate it) without reading the hub's
    /// environment: `is_set` says only whether a variable is set. An unset variable
    /// without a default is a problem, by name; values that would come from the
    /// environment are not checked, so the answer tells nothing about them. The table is
    /// for its warnings and summary: it holds no values from the environment, and is not
    /// for routing.
    pub fn check_submitted(
        text: &str,
        origin: &str,
        is_set: &dyn Fn(&str) -> bool,
        plugins: &dyn PluginCatalog,
    ) -> Result<RouteTable, RoutesError> {
        RouteTable::read(text, origin, read::Env::Presence(is_set), plugins)
    }

    fn read(
        text: &str,
        origin: &str,
        env: read::Env<'_>,
        plugins: &dyn PluginCatalog,
    ) -> Result<RouteTable, RoutesError> {
        let mut read = read::read(text, env, plugins).map_err(|mut problems| {
            problems.sort_by_key(|p| (p.line, p.column));
            RoutesError::new(origin, problems)
        })?;
        read.warnings.sort_by_key(|p| (p.line, p.column));
        let warnings: Vec<String> = read.warnings.iter().map(|w| w.render(origin)).collect();
        let mut shown = serde_json::json!({
            "sources": read.sources,
            "transforms": read.transforms,
            "channels": read.channels,
            "routes": read.routes,
            "warnings": warnings,
        });
        for (pointer, written) in read.as_written {
            if let Some(field) = shown.pointer_mut(&pointer) {
                *field = written;
            }
        }
        Ok(RouteTable {
            origin: origin.to_owned(),
            text: text.to_owned(),
            sources: read.sources,
            transforms: read.transforms,
            channels: read.channels,
            routes: read.routes,
            warnings,
            shown,
        })
    }

    /// Reads and checks the file at `path`, with `${VAR}` from the process environment.
    pub fn load(path: &Path, plugins: &dyn PluginCatalog) -> Result<RouteTable, RoutesError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| {
            RoutesError::new(
                &origin,
                vec![Problem::whole_file(format!("cannot read: {error}"))],
            )
        })?;
        RouteTable::parse(&text, &origin, &|name| std::env::var(name).ok(), plugins)
    }

    /// A table with no sources, channels or routes.
    pub fn empty() -> RouteTable {
        RouteTable {
            origin: String::new(),
            text: String::new(),
            sources: BTreeMap::new(),
            transforms: BTreeMap::new(),
            channels: BTreeMap::new(),
            routes: Vec::new(),
            warnings: Vec::new(),
            shown: serde_json::json!({
                "sources": {}, "transforms": {}, "channels": {}, "routes": [], "warnings": [],
            }),
        }
    }

    /// The channels a notification goes to. Every matching route contributes, in route
    /// order then `to` order; a channel appears once, credited to the first route naming it.
    pub fn targets<K: AsRef<str>, V: AsRef<str>>(
        &self,
        kind: &str,
        attributes: &[(K, V)],
    ) -> Vec<Target> {
        let mut targets: Vec<Target> = Vec::new();
        for route in &self.routes {
            if !route.matcher.matches(kind, attributes) {
                continue;
            }
            for channel in &route.to {
                // Fan-out is a handful of channels: a scan beats hashing.
                if !targets.iter().any(|t| t.channel == *channel) {
                    targets.push(Target {
                        route: route.name.clone(),
                        channel: channel.clone(),
                    });
                }
            }
        }
        targets
    }

    /// The transforms a notification runs through on its way to `channel`, in order, each
    /// with its name: those of the first matching route that names the channel (the route
    /// [`RouteTable::targets`] credits), then the channel's own. Read when each attempt
    /// starts, so a reloaded routes file applies to retries too.
    pub fn transforms_for<K: AsRef<str>, V: AsRef<str>>(
        &self,
        kind: &str,
        attributes: &[(K, V)],
        channel: &str,
    ) -> (Option<&Route>, Vec<(&str, &TransformSpec)>) {
        let route = self.routes.iter().find(|route| {
            route.to.iter().any(|c| &**c == channel) && route.matcher.matches(kind, attributes)
        });
        let route_names = route.map(|r| r.transform.as_slice()).unwrap_or_default();
        let channel_names = self
            .channels
            .get(channel)
            .map(|c| c.transform.as_slice())
            .unwrap_or_default();
        let chain = route_names
            .iter()
            .chain(channel_names)
            .filter_map(|name| self.transforms.get(&**name).map(|spec| (&**name, spec)))
            .collect();
        (route, chain)
    }

    /// Whether any route or channel names a transform: when none does, an attempt skips
    /// the lookup altogether.
    pub fn has_transforms(&self) -> bool {
        !self.transforms.is_empty()
    }

    /// The transform `name` under `transforms:` (or a transform plugin the file names
    /// directly).
    pub fn transform(&self, name: &str) -> Option<&TransformSpec> {
        self.transforms.get(name)
    }

    /// Every transform, by name, sorted.
    pub fn transforms(&self) -> impl Iterator<Item = (&str, &TransformSpec)> {
        self.transforms
            .iter()
            .map(|(name, spec)| (name.as_str(), spec))
    }

    /// The channel `name`.
    pub fn channel(&self, name: &str) -> Option<&ChannelSpec> {
        self.channels.get(name)
    }

    /// Every channel, by name, sorted.
    pub fn channels(&self) -> impl Iterator<Item = (&str, &ChannelSpec)> {
        self.channels
            .iter()
            .map(|(name, spec)| (name.as_str(), spec))
    }

    /// The source `name`.
    pub fn source(&self, name: &str) -> Option<&SourceSpec> {
        self.sources.get(name)
    }

    /// Every source, by name, sorted.
    pub fn sources(&self) -> impl Iterator<Item = (&str, &SourceSpec)> {
        self.sources
            .iter()
            .map(|(name, spec)| (name.as_str(), spec))
    }

    /// The routes, in file order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// What is allowed but probably not meant (a channel no route uses, no routes at
    /// all), each as `file:line:column: message`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The YAML the table was read from, as written (before `${VAR}` interpolation, so it
    /// holds no secret values from the environment).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The file name used in messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// "routes.yaml: 2 sources, 3 channels, 2 routes — OK", with transforms when any.
    pub fn summary(&self) -> String {
        let transforms = match self.transforms.len() {
            0 => String::new(),
            n => format!("{}, ", count(n, "transform")),
        };
        format!(
            "{}: {}, {transforms}{}, {} — OK",
            self.origin,
            count(self.sources.len(), "source"),
            count(self.channels.len(), "channel"),
            count(self.routes.len(), "route")
        )
    }
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Checks a routes file for `switchyard routes check FILE` against the built-in plugins:
/// the summary line, then one `warning: ...` line per warning.
pub fn check_file(path: &Path) -> Result<String, RoutesError> {
    check_file_with(path, &BuiltinCatalog)
}

/// [`check_file`] against the plugins in `plugins`.
pub fn check_file_with(path: &Path, plugins: &dyn PluginCatalog) -> Result<String, RoutesError> {
    let table = RouteTable::load(path, plugins)?;
    let mut report = table.summary();
    for warning in table.warnings() {
        report.push_str("\nwarning: ");
        report.push_str(warning);
    }
    Ok(report)
}

/// A routes file was refused. Displays one line per problem: `file:line:column: reason`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutesError {
    origin: String,
    problems: Vec<Problem>,
}

/// The most problems a refused file reports; the rest are counted.
const MAX_PROBLEMS: usize = 100;

impl RoutesError {
    fn new(origin: &str, mut problems: Vec<Problem>) -> Self {
        if problems.len() > MAX_PROBLEMS {
            let more = problems.len() - MAX_PROBLEMS;
            problems.truncate(MAX_PROBLEMS);
            problems.push(Problem::whole_file(format!(
                "and {more} more problems; fix these first"
            )));
        }
        RoutesError {
            origin: origin.to_owned(),
            problems,
        }
    }

    /// The file name used in messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Every problem, in file order; a `line` of 0 is about the whole file.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for RoutesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&problem.render(&self.origin))?;
        }
        Ok(())
    }
}

impl std::error::Error for RoutesError {}

/// `pub type Result<T, E = RoutesError>`, as every module has one.
pub type Result<T, E = RoutesError> = std::result::Result<T, E>;

fn secret_names<S: serde::Serializer, V>(
    secrets: &BTreeMap<String, V>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(secrets.keys())
}

fn durations<S: serde::Serializer>(
    durations: &[Duration],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(durations.iter().map(|d| crate::yaml::format_duration(*d)))
}

fn arc_str<S: serde::Serializer>(value: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value)
}

fn arc_strs<S: serde::Serializer>(values: &[Arc<str>], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(values.iter().map(|v| &**v))
}

#[cfg(test)]
mod tests;
