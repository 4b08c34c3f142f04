//! Reading a routes file's YAML tree into a table, checking everything on the way.
//!
//! Every reader records its problems and carries on, so one pass reports every mistake in
//! the file; the caller refuses the table if any were found.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{
    ChannelSpec, DEFAULT_RETRY_SCHEDULE, KindPattern, MAX_TRANSFORMS, PluginCatalog, RateLimit,
    Route, RouteMatch, SecretSource, SourceSpec, TransformSpec,
};
use crate::runtime::World;
use crate::yaml::{self, Fields, Node, NodeKind, Problem};

/// What a valid file holds; warnings are problems that do not refuse the file.
pub(super) struct ReadTable {
    pub sources: BTreeMap<String, SourceSpec>,
    pub transforms: BTreeMap<String, TransformSpec>,
    pub channels: BTreeMap<String, ChannelSpec>,
    pub routes: Vec<Route>,
    pub warnings: Vec<Problem>,
    /// Where the table as shown differs from the typed table: a JSON pointer into the
    /// table's serialized form, and the value as written in the file. Every field whose
    /// value read a `${VAR}` is here, so what is shown never holds a variable's value.
    pub as_written: Vec<(String, serde_json::Value)>,
}

/// How the `${VAR}` references of a file are answered.
#[derive(Clone, Copy)]
pub(super) enum Env<'a> {
    /// With the variables' values, as when the hub loads its routes file.
    Values(&'a dyn Fn(&str) -> Option<String>),
    /// Without reading any value, only whether each variable is set: for checking a file
    /// someone submitted, who must learn nothing of the hub's environment from the answer
    /// (a value can be probed through any check that judges it, even one that quotes it
    /// not). Values from the environment are then not checked; unset variables are.
    Presence(&'a dyn Fn(&str) -> bool),
}

/// The scalars whose value read a variable, by (line, column), with their text as written.
type FromEnv = HashMap<(usize, usize), String>;

const TOP_LEVEL: &[&str] = &["sources", "transforms", "channels", "routes"];
const SOURCE_FIELDS: &[&str] = &["adapter", "config", "secrets", "secret", "allowed_hosts"];
const TRANSFORM_FIELDS: &[&str] = &["plugin", "config", "secrets", "allowed_hosts"];
const CHANNEL_FIELDS: &[&str] = &[
    "plugin",
    "config",
    "secrets",
    "allowed_hosts",
    "retry",
    "rate_limit",
    "concurrency",
    "transform",
];
const RETRY_FIELDS: &[&str] = &["schedule"];
const ROUTE_FIELDS: &[&str] = &["name", "match", "to", "transform"];
const MATCH_FIELDS: &[&str] = &["kind", "attributes"];

pub(super) fn read(
    text: &str,
    env: Env<'_>,
    plugins: &dyn PluginCatalog,
) -> Result<ReadTable, Vec<Problem>> {
    let mut table = ReadTable {
        sources: BTreeMap::new(),
        transforms: BTreeMap::new(),
        channels: BTreeMap::new(),
        routes: Vec::new(),
        warnings: Vec::new(),
        as_written: Vec::new(),
    };
    let mut root = match yaml::parse(text)? {
        Some(root) if !root.is_null() => root,
        _ => return Ok(table),
    };
    let mut problems = Vec::new();
    let mut from_env = FromEnv::new();
    match env {
        Env::Values(values) => interpolate(&mut root, values, &mut problems, &mut from_env),
        Env::Presence(is_set) => {
            // A set variable reads as its own reference, so no value enters the tree.
            let stand_in = |name: &str| is_set(name).then(|| format!("${{{name}}}"));
            interpolate(&mut root, &stand_in, &mut problems, &mut from_env);
        }
    }
    let mut reader = Reader {
        plugins,
        problems,
        warnings: Vec::new(),
        from_env,
        opaque: matches!(env, Env::Presence(_)),
        unjudged: false,
        as_written: Vec::new(),
        defined_transforms: Vec::new(),
        plugin_transforms: BTreeSet::new(),
    };
    let Some(top) = Fields::new(&root, "the routes file", TOP_LEVEL, &mut reader.problems) else {
        return Err(reader.problems);
    };

    if let Some(sources) = top.get("sources") {
        for (_, name, node) in reader.named_entries(sources, "source") {
            if let Some(source) = reader.source(&name, node) {
                table.sources.insert(name, source);
            }
        }
    }

    // Read before channels and routes, which name them. Like channels, a transform with
    // problems of its own still counts as defined, so it is reported once.
    let mut defined_transforms: Vec<String> = Vec::new();
    if let Some(transforms) = top.get("transforms") {
        for (_, name, node) in reader.named_entries(transforms, "transform") {
            if let Some(transform) = reader.transform(&name, node) {
                table.transforms.insert(name.clone(), transform);
            }
            defined_transforms.push(name);
        }
    }
    reader.defined_transforms = defined_transforms;

    // Routes may name any channel that is defined, even one with its own problems, so a
    // bad channel is reported once rather than once more for every route that uses it.
    let mut defined_channels: Vec<(&Node, String)> = Vec::new();
    if let Some(channels) = top.get("channels") {
        for (key, name, node) in reader.named_entries(channels, "channel") {
            if let Some(channel) = reader.channel(&name, node) {
                table.channels.insert(name.clone(), channel);
            }
            defined_channels.push((key, name));
        }
    }

    if let Some(routes) = top.get("routes") {
        let channel_names: Vec<&str> = defined_channels.iter().map(|(_, n)| n.as_str()).collect();
        table.routes = reader.routes(routes, &channel_names);
    }

    let used: BTreeSet<&str> = table
        .routes
        .iter()
        .flat_map(|route| route.to.iter().map(|c| &**c))
        .collect();
    // With values unread, a route may send to a channel through a variable: which
    // channels are used, and whether there are routes at all, is then unknown.
    let judged = !reader.unjudged;
    if judged {
        for (key, name) in &defined_channels {
            if !used.contains(name.as_str()) {
                reader.warning(key, format!("channel `{name}` is not used by any route"));
            }
        }
    }
    if judged && table.routes.is_empty() && reader.problems.is_empty() {
        let at = top.key("routes").unwrap_or(&root);
        reader.warning(
            at,
            "there are no routes: notifications will be accepted but delivered nowhere",
        );
    }

    // A transform list may name a transform plugin directly: it runs with no config.
    for name in std::mem::take(&mut reader.plugin_transforms) {
        table.transforms.entry(name.clone()).or_insert_with(|| {
            TransformSpec::new(name, serde_json::json!({}), Default::default(), Vec::new())
        });
    }

    if reader.problems.is_empty() {
        table.warnings = reader.warnings;
        table.as_written = reader.as_written;
        Ok(table)
    } else {
        Err(reader.problems)
    }
}

/// Replaces `${VAR}` in every scalar value under `node` (see [`yaml::interpolate_env`]),
/// noting in `from_env` each scalar that read a variable, with its text as written.
fn interpolate(
    node: &mut Node,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
    from_env: &mut FromEnv,
) {
    if let NodeKind::Scalar(scalar) = &node.kind {
        if scalar.text.contains('$') {
            let written = scalar.text.clone();
            let asked = Cell::new(false);
            let noting = |name: &str| {
                asked.set(true);
                env(name)
            };
            yaml::interpolate_env(node, &noting, problems);
            if asked.get() {
                from_env.insert((node.line, node.column), written);
            }
        }
        return;
    }
    match &mut node.kind {
        NodeKind::Sequence(items) => {
            for item in items {
                interpolate(item, env, problems, from_env);
            }
        }
        NodeKind::Mapping(entries) => {
            for (_, value) in entries {
                interpolate(value, env, problems, from_env);
            }
        }
        NodeKind::Scalar(_) => {}
    }
}

struct Reader<'a> {
    plugins: &'a dyn PluginCatalog,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    from_env: FromEnv,
    /// Values from the environment were not read ([`Env::Presence`]): problems with them
    /// are about stand-ins, so they are not reported.
    opaque: bool,
    /// A problem or warning was not reported because it judged a value not read.
    unjudged: bool,
    as_written: Vec<(String, serde_json::Value)>,
    /// The names under `transforms:`, for the lists that name them.
    defined_transforms: Vec<String>,
    /// Transform plugins named directly in a list, not under `transforms:`.
    plugin_transforms: BTreeSet<String>,
}

impl Reader<'_> {
    /// Records a problem at `node`. Its message quotes values through [`Reader::shown`].
    fn problem(&mut self, node: &Node, message: impl Into<String>) {
        if self.opaque && self.is_from_env(node) {
            self.unjudged = true;
            return;
        }
        self.problems.push(Problem::at(node, message));
    }

    fn warning(&mut self, node: &Node, message: impl Into<String>) {
        if self.opaque && self.is_from_env(node) {
            self.unjudged = true;
            return;
        }
        self.warnings.push(Problem::at(node, message));
    }

    /// Whether `node` is a scalar whose value read a variable.
    fn is_from_env(&self, node: &Node) -> bool {
        node.scalar_text().is_some() && self.from_env.contains_key(&(node.line, node.column))
    }

    /// Whether any scalar in `node` read a variable.
    fn touches_env(&self, node: &Node) -> bool {
        match &node.kind {
            NodeKind::Scalar(_) => self.is_from_env(node),
            NodeKind::Sequence(items) => items.iter().any(|item| self.touches_env(item)),
            NodeKind::Mapping(entries) => entries.iter().any(|(_, value)| self.touches_env(value)),
        }
    }

    /// A scalar's text as the file has it: `${VAR}` where it read a variable, never the
    /// value. Every message that quotes a value quotes this.
    fn shown<'n>(&'n self, node: &'n Node) -> &'n str {
        match self.from_env.get(&(node.line, node.column)) {
            Some(written) if node.scalar_text().is_some() => written.as_str(),
            _ => node.scalar_text().unwrap_or_default(),
        }
    }

    /// `node` as JSON, with every scalar that read a variable as its written text.
    fn written_json(&self, node: &Node) -> serde_json::Value {
        use serde_json::Value;
        match &node.kind {
            NodeKind::Scalar(_) if self.is_from_env(node) => Value::String(self.shown(node).into()),
            NodeKind::Scalar(_) => node.to_json(),
            NodeKind::Sequence(items) => {
                Value::Array(items.iter().map(|item| self.written_json(item)).collect())
            }
            NodeKind::Mapping(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| {
                        let key = match key.scalar_text() {
                            Some(text) => text.to_owned(),
                            None => key.to_json().to_string(),
                        };
                        (key, self.written_json(value))
                    })
                    .collect(),
            ),
        }
    }

    /// Shows the field at `pointer` of the serialized table as `node` is written, when any
    /// of it read a variable.
    fn show_as_written(&mut self, pointer: String, node: Option<&Node>) {
        if let Some(node) = node.filter(|node| self.touches_env(node)) {
            let written = self.written_json(node);
            self.as_written.push((pointer, written));
        }
    }

    /// The entries of a `name: {...}` mapping (sources, channels), with valid names.
    fn named_entries<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
    ) -> Vec<(&'n Node, String, &'n Node)> {
        if node.is_null() {
            return Vec::new();
        }
        let Some(entries) = node.as_mapping() else {
            self.problem(
                node,
                format!(
                    "`{what}s` must be a mapping of {what} name to settings, found {}",
                    node.describe()
                ),
            );
            return Vec::new();
        };
        let mut named = Vec::new();
        for (key, value) in entries {
            if let Some(name) = self.name(key, what) {
                named.push((key, name, value));
            }
        }
        named
    }

    /// A source, channel or route name, checked.
    fn name(&mut self, node: &Node, what: &str) -> Option<String> {
        let Some(name) = node.scalar_text().filter(|_| !node.is_null()) else {
            self.problem(
                node,
                format!("a {what} name must be a string, found {}", node.describe()),
            );
            return None;
        };
        if is_valid_name(name) {
            Some(name.to_owned())
        } else {
            let message = format!(
                "{what} name `{}` is not allowed: use 1 to 64 of `a-z`, `0-9`, `-` and `_`, \
                 starting with a letter or a digit",
                self.shown(node)
            );
            self.problem(node, message);
            None
        }
    }

    /// A required or optional string value.
    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.scalar_text() {
            Some(text) if !node.is_null() => Some(text.to_owned()),
            _ => {
                self.problem(
                    node,
                    format!("{what} must be a string, found {}", node.describe()),
                );
                None
            }
        }
    }

    fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        key: &str,
        owner: &Node,
        what: &str,
    ) -> Option<&'n Node> {
        let node = fields.get(key);
        if node.is_none() {
            self.problem(owner, format!("{what} needs `{key}`"));
        }
        node
    }

    /// A plugin name that must be installed and implement `world`.
    fn plugin(&mut self, node: &Node, world: World) -> Option<String> {
        let name = self.string(node, &format!("the {world} plugin"))?;
        let installed = || listed(&self.plugins.names(world));
        let shown = self.shown(node);
        match self.plugins.world(&name) {
            Some(actual) if actual == world => return Some(name),
            Some(actual) => {
                let message = format!(
                    "`{shown}` is {} {actual}, not {} {world}; installed {world}s: {}",
                    article(actual),
                    article(world),
                    installed()
                );
                self.problem(node, message);
            }
            None => {
                let message = format!(
                    "plugin `{shown}` is not installed; installed {world}s: {}",
                    installed()
                );
                self.problem(node, message);
            }
        }
        None
    }

    fn source(&mut self, name: &str, node: &Node) -> Option<SourceSpec> {
        let what = format!("source `{name}`");
        let fields = Fields::new(node, &what, SOURCE_FIELDS, &mut self.problems)?;
        let adapter = self
            .required(&fields, "adapter", node, &what)
            .and_then(|n| self.plugin(n, World::Adapter));
        let config = self.config(fields.get("config"));
        let mut secrets = self.source_secrets(fields.get("secrets"));
        if let Some(secret) = fields.get("secret") {
            // DESIGN's shorthand for the one secret most inbound webhooks have.
            if secrets.contains_key("secret") {
                self.problem(secret, "`secret` is also given under `secrets`; keep one");
            } else if let Some(value) = self.secret_value(secret, "secret") {
                secrets.insert("secret".to_owned(), value);
            }
        }
        let allowed_hosts = self.allowed_hosts(fields.get("allowed_hosts"));
        for field in ["adapter", "config", "allowed_hosts"] {
            self.show_as_written(format!("/sources/{name}/{field}"), fields.get(field));
        }
        Some(SourceSpec {
            adapter: adapter?,
            config,
            secrets,
            allowed_hosts,
        })
    }

    fn channel(&mut self, name: &str, node: &Node) -> Option<ChannelSpec> {
        let what = format!("channel `{name}`");
        let fields = Fields::new(node, &what, CHANNEL_FIELDS, &mut self.problems)?;
        let plugin = self
            .required(&fields, "plugin", node, &what)
            .and_then(|n| self.plugin(n, World::Channel));
        let config = self.config(fields.get("config"));
        let secrets = self.channel_secrets(fields.get("secrets"));
        let allowed_hosts = self.allowed_hosts(fields.get("allowed_hosts"));
        let retry_schedule = match fields.get("retry") {
            None => DEFAULT_RETRY_SCHEDULE.to_vec(),
            Some(retry) => self.retry_schedule(retry),
        };
        let rate_limit = fields
            .get("rate_limit")
            .filter(|n| !n.is_null())
            .and_then(|n| self.rate_limit(n));
        let concurrency = fields
            .get("concurrency")
            .filter(|n| !n.is_null())
            .and_then(|n| self.concurrency(n));
        let transform = fields
            .get("transform")
            .map(|n| self.transform_list(n, &what))
            .unwrap_or_default();
        for field in [
            "plugin",
            "config",
            "allowed_hosts",
            "rate_limit",
            "concurrency",
            "transform",
        ] {
            self.show_as_written(format!("/channels/{name}/{field}"), fields.get(field));
        }
        // Given secrets show by name only, whatever they read; a list names vault secrets.
        let listed = fields.get("secrets").filter(|n| n.as_sequence().is_some());
        self.show_as_written(format!("/channels/{name}/secrets"), listed);
        let schedule = fields.get("retry").map(|retry| {
            let fields = retry.as_mapping().unwrap_or_default();
            let schedule = fields
                .iter()
                .find(|(k, _)| k.scalar_text() == Some("schedule"));
            schedule.map_or(retry, |(_, schedule)| schedule)
        });
        self.show_as_written(format!("/channels/{name}/retry_schedule"), schedule);
        Some(ChannelSpec {
            plugin: plugin?,
            config,
            secrets,
            allowed_hosts,
            retry_schedule,
            rate_limit,
            concurrency,
            transform,
        })
    }

    fn transform(&mut self, name: &str, node: &Node) -> Option<TransformSpec> {
        let what = format!("transform `{name}`");
        let fields = Fields::new(node, &what, TRANSFORM_FIELDS, &mut self.problems)?;
        let plugin = self
            .required(&fields, "plugin", node, &what)
            .and_then(|n| self.plugin(n, World::Transform));
        let config = self.config(fields.get("config"));
        let secrets = self.source_secrets(fields.get("secrets"));
        let allowed_hosts = self.allowed_hosts(fields.get("allowed_hosts"));
        for field in ["plugin", "config", "allowed_hosts"] {
            self.show_as_written(format!("/transforms/{name}/{field}"), fields.get(field));
        }
        Some(TransformSpec::new(plugin?, config, secrets, allowed_hosts))
    }

    /// A `transform:` list: names under `transforms:`, or transform plugins by name.
    fn transform_list(&mut self, node: &Node, what: &str) -> Vec<Arc<str>> {
        let Some(items) = self.names_list(node, "transform", "transform") else {
            return Vec::new();
        };
        if items.len() > MAX_TRANSFORMS {
            self.problem(
                node,
                format!(
                    "{what} lists {} transforms; at most {MAX_TRANSFORMS} may run in a row",
                    items.len()
                ),
            );
            return Vec::new();
        }
        let mut names = Vec::new();
        for item in items {
            let Some(name) = item.scalar_text().filter(|_| !item.is_null()) else {
                self.problem(
                    item,
                    format!("expected a transform name, found {}", item.describe()),
                );
                continue;
            };
            if self.defined_transforms.iter().any(|t| t == name) {
                names.push(Arc::from(name));
                continue;
            }
            match self.plugins.world(name) {
                Some(World::Transform) => {
                    self.plugin_transforms.insert(name.to_owned());
                    names.push(Arc::from(name));
                }
                _ => {
                    // At most a few names per problem: a file with many unknown names must
                    // not make an answer that grows with their product.
                    let mut known = self.defined_transforms.clone();
                    known.extend(self.plugins.names(World::Transform));
                    known.sort();
                    known.dedup();
                    let known = listed(&known);
                    let message = format!(
                        "{what} names unknown transform `{}`; define it under `transforms:` \
                         or name a transform plugin; known: {}",
                        self.shown(item),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known
                        }
                    );
                    self.problem(item, message);
                }
            }
        }
        names
    }

    fn config(&mut self, node: Option<&Node>) -> serde_json::Value {
        match node {
            None => serde_json::Value::Object(Default::default()),
            Some(node) if node.is_null() => serde_json::Value::Object(Default::default()),
            Some(node) if node.as_mapping().is_some() => node.to_json(),
            Some(node) => {
                self.problem(
                    node,
                    format!("`config` must be a mapping, found {}", node.describe()),
                );
                serde_json::Value::Null
            }
        }
    }

    /// A channel's `secrets`: a mapping of name to value, or a list of the names whose
    /// values the vault keeps.
    fn channel_secrets(&mut self, node: Option<&Node>) -> BTreeMap<String, SecretSource> {
        let Some(node) = node.filter(|n| !n.is_null()) else {
            return BTreeMap::new();
        };
        if let Some(items) = node.as_sequence() {
            return self.vault_secret_names(items);
        }
        self.given_secrets(
            node,
            "`secrets` must map each secret name to its value, or list the names of secrets \
             kept in the vault",
        )
        .into_iter()
        .map(|(name, value)| (name, SecretSource::Given(value)))
        .collect()
    }

    /// A source's `secrets`: a mapping of name to value.
    fn source_secrets(&mut self, node: Option<&Node>) -> BTreeMap<String, String> {
        let Some(node) = node.filter(|n| !n.is_null()) else {
            return BTreeMap::new();
        };
        if let Some(items) = node.as_sequence() {
            // The vault keeps channel secrets; an adapter's secret stays in the environment.
            let example = match items.first() {
                Some(first) if first.scalar_text().is_some() => self.shown(first).to_owned(),
                _ => "secret".to_owned(),
            };
            self.problem(
                node,
                format!(
                    "a source's `secrets` must map each secret name to its value (the vault \
                     keeps channel secrets only): write `secrets: {{ {example}: \"${{ENV_VAR}}\" }}`"
                ),
            );
            return BTreeMap::new();
        }
        self.given_secrets(node, "`secrets` must map each secret name to its value")
    }

    fn vault_secret_names(&mut self, items: &[Node]) -> BTreeMap<String, SecretSource> {
        let mut secrets = BTreeMap::new();
        for item in items {
            let Some(name) = item.scalar_text().filter(|_| !item.is_null()) else {
                self.problem(
                    item,
                    format!("expected a secret name, found {}", item.describe()),
                );
                continue;
            };
            if !is_valid_secret_name(name) {
                self.problem(
                    item,
                    "a secret name must be letters, digits, `_`, `-` or `.`",
                );
            } else if secrets
                .insert(name.to_owned(), SecretSource::Vault)
                .is_some()
            {
                let message = format!("secret `{}` is listed twice", self.shown(item));
                self.problem(item, message);
            }
        }
        secrets
    }

    /// `secrets` as a mapping of name to value; `expected` opens the message when it is not.
    fn given_secrets(&mut self, node: &Node, expected: &str) -> BTreeMap<String, String> {
        let mut secrets = BTreeMap::new();
        let Some(entries) = node.as_mapping() else {
            self.problem(node, format!("{expected}, found {}", node.describe()));
            return secrets;
        };
        for (key, value) in entries {
            let Some(name) = key.scalar_text().filter(|n| is_valid_secret_name(n)) else {
                self.problem(
                    key,
                    "a secret name must be letters, digits, `_`, `-` or `.`",
                );
                continue;
            };
            if let Some(value) = self.secret_value(value, name) {
                secrets.insert(name.to_owned(), value);
            }
        }
        secrets
    }

    fn secret_value(&mut self, node: &Node, name: &str) -> Option<String> {
        match node.scalar_text() {
            Some(text) if !node.is_null() && !text.is_empty() => Some(text.to_owned()),
            Some(_) => {
                self.problem(
                    node,
                    format!("secret `{name}` is empty; give it a value, like \"${{ENV_VAR}}\""),
                );
                None
            }
            None => {
                self.problem(
                    node,
                    format!(
                        "secret `{name}` must be a string, found {}",
                        node.describe()
                    ),
                );
                None
            }
        }
    }

    fn allowed_hosts(&mut self, node: Option<&Node>) -> Vec<String> {
        let Some(node) = node.filter(|n| !n.is_null()) else {
            return Vec::new();
        };
        let Some(items) = node.as_sequence() else {
            self.problem(
                node,
                format!(
                    "`allowed_hosts` must be a list of host names, found {}",
                    node.describe()
                ),
            );
            return Vec::new();
        };
        let mut hosts = Vec::new();
        for item in items {
            let Some(entry) = item.scalar_text().filter(|_| !item.is_null()) else {
                self.problem(
                    item,
                    format!("expected a host name, found {}", item.describe()),
                );
                continue;
            };
            match check_host(entry, self.shown(item)) {
                Ok(host) => hosts.push(host),
                Err(message) => self.problem(item, message),
            }
        }
        hosts
    }

    fn retry_schedule(&mut self, node: &Node) -> Vec<Duration> {
        let Some(fields) = Fields::new(node, "`retry`", RETRY_FIELDS, &mut self.problems) else {
            return Vec::new();
        };
        let Some(schedule) = fields.get("schedule") else {
            return DEFAULT_RETRY_SCHEDULE.to_vec();
        };
        if schedule.is_null() {
            return Vec::new();
        }
        let Some(items) = schedule.as_sequence() else {
            self.problem(
                schedule,
                format!(
                    "`schedule` must be a list of delays like [5s, 5m, 2h], found {}",
                    schedule.describe()
                ),
            );
            return Vec::new();
        };
        let mut delays = Vec::new();
        for item in items {
            match item.scalar_text().map(yaml::parse_duration) {
                Some(Ok(delay)) => delays.push(delay),
                // The parser's message quotes the value, and may quote a part of it.
                Some(Err(_)) if self.is_from_env(item) => {
                    let message = format!(
                        "invalid delay `{}`: write it like 100ms, 5s, 5m or 2h",
                        self.shown(item)
                    );
                    self.problem(item, message);
                }
                Some(Err(message)) => self.problem(item, message),
                None => self.problem(
                    item,
                    format!("expected a delay like 5m, found {}", item.describe()),
                ),
            }
        }
        delays
    }

    fn rate_limit(&mut self, node: &Node) -> Option<RateLimit> {
        let text = node.scalar_text().unwrap_or_default();
        let parsed = RateLimit::parse(text);
        if parsed.is_none() {
            let found = match node.scalar_text() {
                Some(_) => format!("`{}`", self.shown(node)),
                None => node.describe().to_owned(),
            };
            self.problem(
                node,
                format!(
                    "invalid rate_limit {found}: write N/s, N/m or N/h with N at least 1, like 50/s"
                ),
            );
        }
        parsed
    }

    fn concurrency(&mut self, node: &Node) -> Option<u32> {
        let value = node
            .scalar_text()
            .and_then(|text| text.parse::<u32>().ok())
            .filter(|n| *n >= 1);
        if value.is_none() {
            let found = match node.scalar_text() {
                Some(_) => self.shown(node).to_owned(),
                None => node.describe().to_owned(),
            };
            self.problem(
                node,
                format!("`concurrency` must be a whole number of at least 1, found {found}"),
            );
        }
        value
    }

    fn routes(&mut self, node: &Node, channels: &[&str]) -> Vec<Route> {
        if node.is_null() {
            return Vec::new();
        }
        let Some(items) = node.as_sequence() else {
            self.problem(
                node,
                format!(
                    "`routes` must be a list of routes (each starting with `- name:`), found {}",
                    node.describe()
                ),
            );
            return Vec::new();
        };
        let mut routes = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (index, item) in items.iter().enumerate() {
            let what = format!("route {}", index + 1);
            let Some(fields) = Fields::new(item, &what, ROUTE_FIELDS, &mut self.problems) else {
                continue;
            };
            let name_node = self.required(&fields, "name", item, &what);
            let name = name_node.and_then(|n| self.name(n, "route"));
            if let (Some(name), Some(name_node)) = (&name, name_node) {
                if let Some(first) = seen.get(name) {
                    let message = format!(
                        "route name `{}` is already used at line {first}",
                        self.shown(name_node)
                    );
                    self.problem(name_node, message);
                } else {
                    seen.insert(name.clone(), name_node.line);
                }
            }
            let what = match (&name, name_node) {
                (Some(_), Some(name_node)) => format!("route `{}`", self.shown(name_node)),
                _ => what,
            };
            let matcher = self
                .required(&fields, "match", item, &what)
                .and_then(|n| self.route_match(n));
            let to = self
                .required(&fields, "to", item, &what)
                .map(|n| self.route_to(n, &what, channels));
            let transform = fields
                .get("transform")
                .map(|n| self.transform_list(n, &what))
                .unwrap_or_default();
            if let (Some(name), Some(matcher), Some(to)) = (name, matcher, to) {
                for field in ["name", "match", "to", "transform"] {
                    let pointer = format!("/routes/{}/{field}", routes.len());
                    self.show_as_written(pointer, fields.get(field));
                }
                routes.push(Route {
                    name: Arc::from(name),
                    matcher,
                    to,
                    transform,
                });
            }
        }
        routes
    }

    fn route_match(&mut self, node: &Node) -> Option<RouteMatch> {
        let fields = Fields::new(node, "`match`", MATCH_FIELDS, &mut self.problems)?;
        let kind = match fields.get("kind") {
            None => Some(KindPattern::new("*").expect("`*` is a valid pattern")),
            Some(kind) => match kind.scalar_text().filter(|_| !kind.is_null()) {
                Some(pattern) => KindPattern::new(pattern)
                    .map_err(|message| {
                        // The pattern's message quotes the value.
                        let message = if self.is_from_env(kind) {
                            format!(
                                "kind pattern `{}` is not valid: it must not be empty or hold \
                                 white space, and only `*` and `?` are special",
                                self.shown(kind)
                            )
                        } else {
                            message
                        };
                        self.problem(kind, message)
                    })
                    .ok(),
                None => {
                    self.problem(
                        kind,
                        format!(
                            "`kind` must be a pattern like \"order.*\", found {}",
                            kind.describe()
                        ),
                    );
                    None
                }
            },
        };
        let attributes = match fields.get("attributes") {
            None => BTreeMap::new(),
            Some(node) => self.attributes(node),
        };
        Some(RouteMatch {
            kind: kind?,
            attributes,
        })
    }

    fn attributes(&mut self, node: &Node) -> BTreeMap<String, Vec<String>> {
        let mut attributes = BTreeMap::new();
        if node.is_null() {
            return attributes;
        }
        let Some(entries) = node.as_mapping() else {
            self.problem(
                node,
                format!(
                    "`attributes` must map attribute names to a value or a list of values, found {}",
                    node.describe()
                ),
            );
            return attributes;
        };
        for (key, value) in entries {
            let Some(name) = key.scalar_text().filter(|n| !n.is_empty()) else {
                self.problem(key, "an attribute name must be a non-empty string");
                continue;
            };
            let values: Vec<String> = match (value.scalar_text(), value.as_sequence()) {
                (Some(text), _) if !value.is_null() => vec![text.to_owned()],
                (_, Some(items)) if !items.is_empty() => {
                    let mut values = Vec::new();
                    for item in items {
                        match item.scalar_text().filter(|_| !item.is_null()) {
                            Some(text) => values.push(text.to_owned()),
                            None => self.problem(
                                item,
                                format!(
                                    "attribute `{name}`: expected a value, found {}",
                                    item.describe()
                                ),
                            ),
                        }
                    }
                    values
                }
                _ => {
                    self.problem(
                        value,
                        format!(
                            "attribute `{name}` needs a value or a non-empty list of values, found {}",
                            value.describe()
                        ),
                    );
                    continue;
                }
            };
            attributes.insert(name.to_owned(), values);
        }
        attributes
    }

    /// The items of a list of names (`to`, `transform`). One name alone reads as a list of
    /// one (`to: ops` is `to: [ops]`): the one-channel route is common enough.
    fn names_list<'n>(&mut self, node: &'n Node, field: &str, of: &str) -> Option<Vec<&'n Node>> {
        match (node.as_sequence(), node.scalar_text()) {
            (Some(items), _) => Some(items.iter().collect()),
            (None, Some(_)) if !node.is_null() => Some(vec![node]),
            _ => {
                self.problem(
                    node,
                    format!(
                        "`{field}` must be a list of {of} names, found {}",
                        node.describe()
                    ),
                );
                None
            }
        }
    }

    fn route_to(&mut self, node: &Node, what: &str, channels: &[&str]) -> Vec<Arc<str>> {
        let Some(items) = self.names_list(node, "to", "channel") else {
            return Vec::new();
        };
        if items.is_empty() {
            self.problem(node, format!("{what} sends nowhere: `to` lists no channel"));
        }
        let mut to: Vec<Arc<str>> = Vec::new();
        for item in items {
            let Some(channel) = item.scalar_text().filter(|_| !item.is_null()) else {
                self.problem(
                    item,
                    format!("expected a channel name, found {}", item.describe()),
                );
                continue;
            };
            if !channels.contains(&channel) {
                let known = if channels.is_empty() {
                    "no channels are defined".to_owned()
                } else {
                    format!("channels: {}", listed(channels))
                };
                let message = format!(
                    "{what} sends to unknown channel `{}`; {known}",
                    self.shown(item)
                );
                self.problem(item, message);
            } else if to.iter().any(|c| &**c == channel) {
                let message = format!("{what} lists channel `{}` twice", self.shown(item));
                self.warning(item, message);
            } else {
                to.push(Arc::from(channel));
            }
        }
        to
    }
}

/// The first few of `names` for a message ("a, b, c and 7 more"): enough to spot a typo,
/// and never so many that a file's problems grow with the square of its size.
fn listed(names: &[impl AsRef<str>]) -> String {
    const SHOWN: usize = 10;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

fn article(world: World) -> &'static str {
    match world {
        World::Adapter => "an",
        World::Channel | World::Transform => "a",
    }
}

/// `^[a-z0-9][a-z0-9_-]{0,63}$`: safe in URLs (`/hooks/{name}`), metrics labels and queue
/// names, in every backend.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
}

/// Letters, digits, `_`, `-` and `.`: never `/`, which the vault's record identities use as
/// the separator.
pub(crate) fn is_valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// An `allowed_hosts` entry as `fetch` compares it: an exact host name or IP address, or
/// `*.domain` for any name under the domain. Lowercased, because host names are
/// case-insensitive.
/// `shown` is the entry as written, for the message.
fn check_host(entry: &str, shown: &str) -> Result<String, String> {
    let host = entry.trim().to_ascii_lowercase();
    let refuse = || {
        Err(format!(
            "`{shown}` is not a host name: write `api.example.com` or `*.example.com`, \
             without scheme, port or path"
        ))
    };
    if host == "*" {
        return Err("`*` would allow every host; list the hosts the plugin needs".into());
    }
    if let Some(domain) = host.strip_prefix("*.") {
        return if is_dns_name(domain) {
            Ok(host)
        } else {
            refuse()
        };
    }
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&host);
    if unbracketed.parse::<IpAddr>().is_ok() || is_dns_name(&host) {
        Ok(host)
    } else {
        refuse()
    }
}

fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}
