//! The channel-secrets vault: secrets a routes file names by bare name
//! (`secrets: [signing_key]`) are kept here, sealed, and opened only to hand them to the
//! channel's plugin at delivery. Values are never shown back; listings carry names, whether
//! each is set, its key id and when it was set.
//!
//! # Sealing
//!
//! Each value is sealed with AES-256-GCM under the current master key, with a fresh random
//! 96-bit nonce. A sealed value is
//!
//! ```text
//! version (1 byte, 1) | key id (4 bytes) | nonce (12 bytes) | ciphertext and tag
//! ```
//!
//! and its associated data is the version and key id followed by the record's identity,
//! `channel-secret:{channel}/{name}`, so a ciphertext copied into another row does not open,
//! and neither does one whose header was edited. Every ciphertext names its key, so any key
//! of the key ring can open it while the master key rotates.
//!
//! # Master keys
//!
//! A master key is 32 random bytes. Its **key id** is derived from it, never stored beside
//! it: the first 4 bytes (8 hex digits) of SHA-256 over `switchyard-master-key-id\0` and the
//! key, so an id cannot disagree with its key and reveals nothing about it.
//!
//! The keys come from `SWITCHYARD_MASTER_KEY` when it is set, else from the key file
//! (`master_key_file` in the config, default `<data_dir>/master.key`). Both hold a **key
//! ring**: keys in base64, one a line (or comma-separated), `#` starting a comment; the
//! first key seals, every key opens. The first run without either creates the key file with
//! one fresh key, 0600 from the moment it exists (written to a private temporary file and
//! hard-linked into place, so the key file is never half-written).
//!
//! # Rotation
//!
//! [`Vault::rotate`] (`switchyard secrets rotate-key`) moves every secret to a new key, in
//! steps that each leave every secret readable if the process dies right after:
//!
//! 1. the key file is replaced (write beside it, then rename) by a ring of the new key
//!    followed by the old ones: new secrets are sealed under the new key, old ones still open;
//! 2. one transaction re-seals every secret under the new key;
//! 3. each old key is kept in `<key file>.old-<key id>` (for backups of the database taken
//!    before the rotation; delete it when none is needed), and only then is the key file
//!    replaced by a ring of the new key alone;
//! 4. a second pass re-seals anything a running hub sealed under an old key meanwhile.
//!
//! A running hub re-reads the key file when it meets a key id it does not know and before
//! it seals, so it follows a rotation made by the command line.
//!
//! When the keys come from `SWITCHYARD_MASTER_KEY`, the vault cannot change them: the
//! operator names a file for the new key (`--new-key-file`; created with a fresh key, 0600,
//! when it does not exist), the vault re-seals everything under it in one transaction, and
//! the operator then sets `SWITCHYARD_MASTER_KEY` to it. Setting it to `NEW,OLD` before the
//! rotation lets a running hub read both.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::routing::{self, RouteTable, SecretSource};
use crate::store::{self, SealedSecret, SecretInfo, Store};

/// The environment variable that, when set, holds the master key ring instead of the file.
pub const MASTER_KEY_ENV: &str = "SWITCHYARD_MASTER_KEY";
/// The longest secret value accepted. Secrets are keys and tokens, not documents.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

const KEY_LEN: usize = 32;
const FORMAT_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
/// Version and key id: authenticated as associated data, so neither can be edited.
const AUTHENTICATED_HEADER_LEN: usize = 1 + KEY_ID_LEN;
const HEADER_LEN: usize = AUTHENTICATED_HEADER_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;

/// A vault failure. None of these carries key material or a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cannot {action} {}: {source}", path.display())]
    KeyFile {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{origin}: {reason}")]
    BadKey { origin: String, reason: String },
    #[error(
        "the master key file {} is missing, but the store holds secrets sealed under key \
         {key_ids}; put the key file back (or set {MASTER_KEY_ENV}) rather than start with a \
         new key that cannot open them",
        path.display()
    )]
    KeyFileMissing { path: PathBuf, key_ids: String },
    #[error(
        "secret `{name}` of channel `{channel}` is sealed under master key {key_id}, which is \
         not in the key ring; add that key to the ring (a rotation of the key file keeps it \
         in <key file>.old-{key_id}) or set the secret again"
    )]
    UnknownKey {
        channel: String,
        name: String,
        key_id: String,
    },
    #[error(
        "secret `{name}` of channel `{channel}` does not open: it was altered or belongs to \
         another record; set it again"
    )]
    Unreadable { channel: String, name: String },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "channel `{channel}` does not take a secret `{name}` from the vault: list it in the \
         channel's `secrets: [...]` in the routes file first"
    )]
    NotDeclared { channel: String, name: String },
    #[error(
        "the master key comes from {MASTER_KEY_ENV}, which this command cannot change: name a \
         file for the new key with --new-key-file FILE (a fresh key is written to it when it \
         does not exist), then set {MASTER_KEY_ENV} to that key"
    )]
    EnvKeyNeedsNewKey,
}

/// `pub type Result<T, E = Error>`, as every module has one.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The id of a master key, shown as 8 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A 256-bit master key. Its `Debug` shows only the key id.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; KEY_LEN],
    id: KeyId,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// A fresh key from the CSPRNG.
    pub fn generate() -> MasterKey {
        let mut bytes = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut bytes);
        MasterKey::from_bytes(bytes)
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> MasterKey {
        let digest = Sha256::new()
            .chain_update(b"switchyard-master-key-id\0")
            .chain_update(bytes)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        MasterKey {
            bytes,
            id: KeyId(id),
        }
    }

    /// Reads a key written in base64. The reason given on failure never quotes the text.
    pub fn from_base64(text: &str) -> Result<MasterKey, String> {
        let bytes = BASE64.decode(text.trim()).map_err(|_| {
            "a master key must be base64 of 32 bytes; this is not base64".to_owned()
        })?;
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|bytes: Vec<u8>| {
            format!(
                "a master key must be base64 of 32 bytes; this is {} bytes",
                bytes.len()
            )
        })?;
        Ok(MasterKey::from_bytes(bytes))
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(self.bytes)
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.bytes.into())
    }
}

/// Master keys by id: the first seals, every one opens.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<MasterKey>,
}

impl KeyRing {
    /// A ring that seals with `current` and also opens with `older` (duplicates dropped).
    pub fn new(current: MasterKey, older: impl IntoIterator<Item = MasterKey>) -> KeyRing {
        let mut keys = vec![current];
        for key in older {
            if !keys.iter().any(|k| k.id == key.id) {
                keys.push(key);
            }
        }
        KeyRing { keys }
    }

    /// Reads the key-ring text of the key file or `SWITCHYARD_MASTER_KEY`; `origin` names
    /// it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<KeyRing> {
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default();
            for entry in line.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let key = MasterKey::from_base64(entry).map_err(|reason| Error::BadKey {
                    origin: format!("{origin}, line {}", index + 1),
                    reason,
                })?;
                keys.push(key);
            }
        }
        let mut keys = keys.into_iter();
        let current = keys.next().ok_or_else(|| Error::BadKey {
            origin: origin.to_owned(),
            reason: "holds no master key (base64 of 32 bytes, one a line)".to_owned(),
        })?;
        Ok(KeyRing::new(current, keys))
    }

    /// The key that seals.
    pub fn current(&self) -> &MasterKey {
        &self.keys[0]
    }

    pub fn get(&self, id: KeyId) -> Option<&MasterKey> {
        self.keys.iter().find(|key| key.id == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|key| key.id)
    }

    /// The ring as the key file holds it.
    fn to_file_text(&self) -> String {
        let mut text = String::from(
            "# Switchyard master keys: base64 of 32 random bytes, one a line. The first line\n\
             # seals channel secrets; every line opens them. Keep this file private and back\n\
             # it up apart from the database: without it the stored secrets are lost.\n",
        );
        for (index, key) in self.keys.iter().enumerate() {
            let role = if index == 0 { ", current" } else { "" };
            text.push_str(&format!("{}  # key id {}{role}\n", key.to_base64(), key.id));
        }
        text
    }
}

/// Where the master keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// The key ring text of `SWITCHYARD_MASTER_KEY`.
    Env(String),
    /// The key file; created with a fresh key when it does not exist.
    File(PathBuf),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env(_) => write!(f, "KeySource::Env({MASTER_KEY_ENV})"),
            KeySource::File(path) => write!(f, "KeySource::File({})", path.display()),
        }
    }
}

impl KeySource {
    /// `SWITCHYARD_MASTER_KEY` when it is set and not empty, else the key file `file`.
    pub fn from_env_or_file(file: PathBuf) -> KeySource {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(text) if !text.trim().is_empty() => KeySource::Env(text),
            _ => KeySource::File(file),
        }
    }

    /// Where the keys come from, for messages.
    pub fn describe(&self) -> String {
        match self {
            KeySource::Env(_) => MASTER_KEY_ENV.to_owned(),
            KeySource::File(path) => path.display().to_string(),
        }
    }
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The key everything is sealed under now.
    pub new_key_id: KeyId,
    /// How many stored secrets were re-sealed.
    pub resealed: usize,
    /// The keys that no longer seal or open anything in the store.
    pub retired: Vec<KeyId>,
    /// Where the retired keys were kept (when the keys come from the key file).
    pub retired_files: Vec<PathBuf>,
}

/// A secret, as the admin page and `switchyard secrets list` show it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretStatus {
    pub channel: String,
    pub name: String,
    /// Whether a value is stored.
    pub set: bool,
    /// Whether the routes in force take it from the vault (`secrets: [name]`). A stored
    /// secret no route takes is kept, but unused.
    pub declared: bool,
    /// The master key the value is sealed under, when set.
    pub key_id: Option<String>,
    /// When the value was last set (Unix ms), when set.
    pub updated_at: Option<i64>,
}

/// The secrets `table` takes from the vault and those `stored`, merged by channel and name.
pub fn secret_statuses(table: &RouteTable, stored: Vec<SecretInfo>) -> Vec<SecretStatus> {
    let mut statuses: BTreeMap<(String, String), SecretStatus> = BTreeMap::new();
    for (channel, spec) in table.channels() {
        for name in spec.vault_secrets() {
            statuses.insert(
                (channel.to_owned(), name.to_owned()),
                SecretStatus {
                    channel: channel.to_owned(),
                    name: name.to_owned(),
                    set: false,
                    declared: true,
                    key_id: None,
                    updated_at: None,
                },
            );
        }
    }
    // Endpoints' signing secrets belong to tenants, who manage them through the API; the
    // operator's listing would be swamped by them.
    let stored = stored
        .into_iter()
        .filter(|info| routing::endpoints::endpoint_id(&info.channel).is_none());
    for info in stored {
        let status = statuses
            .entry((info.channel.clone(), info.name.clone()))
            .or_insert_with(|| SecretStatus {
                channel: info.channel,
                name: info.name,
                set: false,
                declared: false,
                key_id: None,
                updated_at: None,
            });
        status.set = true;
        status.key_id = Some(info.key_id);
        status.updated_at = Some(info.updated_at);
    }
    statuses.into_values().collect()
}

/// Whether `table` takes `channel`'s secret `name` from the vault.
pub fn is_declared(table: &RouteTable, channel: &str, name: &str) -> bool {
    table
        .channel(channel)
        .is_some_and(|spec| matches!(spec.secrets.get(name), Some(SecretSource::Vault)))
}

/// The vault: seals into and opens from the store's `channel_secrets`.
pub struct Vault {
    store: Store,
    source: KeySource,
    ring: RwLock<Arc<KeyRing>>,
    /// Bumped whenever a secret or the key ring changes through this vault, so caches of
    /// opened secrets know to look again.
    generation: AtomicU64,
    /// When [`Vault::derived_keys`] last read the key file (Unix ms).
    derived_keys_read_at: AtomicI64,
}

/// How often [`Vault::derived_keys`] reads the key file at most: its callers include an
/// unauthenticated page (the portal's link), which must not turn into file reads on demand.
const DERIVED_KEYS_REREAD_MS: i64 = 1000;

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("source", &self.source)
            .field("current_key", &self.current_key_id())
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Opens the vault over `store`, creating the key file with a fresh key when the keys
    /// come from a file that does not exist yet.
    pub async fn open(store: Store, source: KeySource) -> Result<Vault> {
        let ring = match &source {
            KeySource::Env(text) => KeyRing::parse(text, MASTER_KEY_ENV)?,
            KeySource::File(path) => match read_key_file(path)? {
                Some(ring) => ring,
                None => {
                    let in_use = store.channel_secret_key_ids().await?;
                    if !in_use.is_empty() {
                        let key_ids: Vec<&str> = in_use.iter().map(|(id, _)| id.as_str()).collect();
                        return Err(Error::KeyFileMissing {
                            path: path.clone(),
                            key_ids: key_ids.join(", "),
                        });
                    }
                    let ring = KeyRing::new(MasterKey::generate(), []);
                    if create_private_file(path, &ring.to_file_text())? {
                        tracing::info!(path = %path.display(), key_id = %ring.current().id, "created the master key file; back it up apart from the database");
                        ring
                    } else {
                        // Another process created it first: use its key.
                        read_key_file(path)?.ok_or_else(|| Error::KeyFile {
                            action: "read",
                            path: path.clone(),
                            source: io::ErrorKind::NotFound.into(),
                        })?
                    }
                }
            },
        };
        let vault = Vault {
            store,
            source,
            ring: RwLock::new(Arc::new(ring)),
            generation: AtomicU64::new(0),
            derived_keys_read_at: AtomicI64::new(0),
        };
        vault.warn_about_missing_keys().await?;
        Ok(vault)
    }

    /// The id of the key new secrets are sealed under.
    pub fn current_key_id(&self) -> KeyId {
        self.ring().current().id
    }

    /// A 256-bit key for `purpose` from each master key of the ring, the sealing key's
    /// first: for signing what every process of one deployment must check (they share the
    /// master keys), while older keys still check what was signed during a rotation (a
    /// finished rotation retires them, and what they signed no longer checks). Each is
    /// HMAC-SHA256 of the master key over the purpose, so it reveals nothing of the master
    /// key, and keys for different purposes are unrelated.
    ///
    /// It reads the key file again when it last did a second or more ago, so a running hub
    /// signs and checks with the keys another process rotated to, not the ones it started
    /// with and which that rotation retired.
    pub fn derived_keys(&self, purpose: &str) -> Vec<[u8; 32]> {
        use hmac::Mac;
        let now = crate::store::now_ms();
        let read_at = self.derived_keys_read_at.load(Ordering::Acquire);
        let due = now.saturating_sub(read_at) >= DERIVED_KEYS_REREAD_MS
            && self
                .derived_keys_read_at
                .compare_exchange(read_at, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        let ring = if due {
            self.reload_ring().unwrap_or_else(|error| {
                tracing::warn!(%error, "could not re-read the key file; using the keys read before");
                self.ring()
            })
        } else {
            self.ring()
        };
        ring.keys
            .iter()
            .map(|key| {
                let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&key.bytes)
                    .expect("HMAC takes keys of any length");
                mac.update(b"switchyard-derived-key\0");
                mac.update(purpose.as_bytes());
                mac.finalize().into_bytes().into()
            })
            .collect()
    }

    /// Where the keys come from.
    pub fn key_source(&self) -> &KeySource {
        &self.source
    }

    /// Changes whenever a secret or the key ring changes through this vault.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Seals `value` as `channel`'s secret `name`, replacing any earlier value.
    pub async fn set(&self, channel: &str, name: &str, value: &str) -> Result<()> {
        check_names(channel, name)?;
        if value.is_empty() {
            return Err(Error::Invalid(format!("secret `{name}` needs a value")));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::Invalid(format!(
                "secret `{name}` is {} bytes; at most {MAX_VALUE_BYTES} are accepted",
                value.len()
            )));
        }
        // Another process may have rotated the key: seal under the key the file says now.
        let ring = self.reload_ring()?;
        let key = ring.current();
        let sealed = seal(key, &record_identity(channel, name), value.as_bytes());
        self.store
            .set_channel_secret(channel, name, &sealed, &key.id.to_string())
            .await?;
        self.changed();
        Ok(())
    }

    /// Opens `channel`'s secret `name`; `None` when it is not set.
    pub async fn get(&self, channel: &str, name: &str) -> Result<Option<String>> {
        let Some((sealed, _)) = self.store.channel_secret(channel, name).await? else {
            return Ok(None);
        };
        let identity = record_identity(channel, name);
        let opened = match open_sealed(&self.ring(), &identity, &sealed) {
            // Sealed under a key another process rotated to: the key file knows it.
            Err(OpenError::UnknownKey(_)) if matches!(self.source, KeySource::File(_)) => {
                open_sealed(&*self.reload_ring()?, &identity, &sealed)
            }
            other => other,
        };
        let plaintext = opened.map_err(|error| error.about(channel, name))?;
        String::from_utf8(plaintext)
            .map(Some)
            .map_err(|_| Error::Unreadable {
                channel: channel.to_owned(),
                name: name.to_owned(),
            })
    }

    /// Removes `channel`'s secret `name`; false when it was not set.
    pub async fn remove(&self, channel: &str, name: &str) -> Result<bool> {
        check_names(channel, name)?;
        let removed = self.store.delete_channel_secret(channel, name).await?;
        self.changed();
        Ok(removed)
    }

    /// Removes every secret of `channel` (a deleted endpoint's); returns how many.
    pub async fn remove_channel(&self, channel: &str) -> Result<u64> {
        let removed = self.store.delete_channel_secrets(channel).await?;
        self.changed();
        Ok(removed)
    }

    /// Every stored secret, without values.
    pub async fn stored(&self) -> Result<Vec<SecretInfo>> {
        Ok(self.store.channel_secrets_listing().await?)
    }

    /// Re-seals every stored secret under `new_key` (a fresh key when `None`, which needs
    /// the key file) and retires the other keys. See the module docs for the steps and why
    /// a crash between any two of them leaves every secret readable.
    pub async fn rotate(&self, new_key: Option<MasterKey>) -> Result<Rotation> {
        let old = self.reload_ring()?;
        let new_key = match (new_key, &self.source) {
            (Some(key), _) => key,
            (None, KeySource::File(_)) => MasterKey::generate(),
            (None, KeySource::Env(_)) => return Err(Error::EnvKeyNeedsNewKey),
        };
        let retired: Vec<MasterKey> = old
            .keys
            .iter()
            .filter(|key| key.id != new_key.id)
            .cloned()
            .collect();
        let both = KeyRing::new(new_key.clone(), old.keys.iter().cloned());
        let only_new = KeyRing::new(new_key.clone(), []);
        let mut retired_files = Vec::new();
        let mut resealed;
        match &self.source {
            KeySource::File(path) => {
                replace_private_file(path, &both.to_file_text())?;
                self.set_ring(both.clone());
                resealed = self.reseal_all(&both).await?;
                for key in &retired {
                    retired_files.push(keep_retired_key(path, key)?);
                }
                replace_private_file(path, &only_new.to_file_text())?;
                self.set_ring(only_new);
                // A hub that read the key file before the first step may have sealed a
                // secret under an old key since; the old keys are still at hand here.
                resealed += self.reseal_all(&both).await?;
            }
            KeySource::Env(_) => {
                resealed = self.reseal_all(&both).await?;
                self.set_ring(only_new);
            }
        }
        self.changed();
        Ok(Rotation {
            new_key_id: new_key.id,
            resealed,
            retired: retired.iter().map(|key| key.id).collect(),
            retired_files,
        })
    }

    /// Re-seals, in one transaction, every secret not yet under `ring`'s current key.
    async fn reseal_all(&self, ring: &KeyRing) -> Result<usize> {
        let current = ring.current();
        let current_id = current.id.to_string();
        self.store
            .reseal_channel_secrets(|row: &SealedSecret| {
                if sealed_key_id(&row.ciphertext) == Some(current.id) {
                    return Ok(None);
                }
                let identity = record_identity(&row.channel, &row.name);
                let plaintext = open_sealed(ring, &identity, &row.ciphertext)
                    .map_err(|error| error.about(&row.channel, &row.name))?;
                Ok(Some((
                    seal(current, &identity, &plaintext),
                    current_id.clone(),
                )))
            })
            .await
    }

    fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().expect("key ring lock").clone()
    }

    fn set_ring(&self, ring: KeyRing) {
        *self.ring.write().expect("key ring lock") = Arc::new(ring);
        self.changed();
    }

    /// The key ring as its source says now (the environment does not change).
    fn reload_ring(&self) -> Result<Arc<KeyRing>> {
        if let KeySource::File(path) = &self.source {
            let ring = read_key_file(path)?.ok_or_else(|| Error::KeyFile {
                action: "read",
                path: path.clone(),
                source: io::ErrorKind::NotFound.into(),
            })?;
            let unchanged = self.ring().ids().eq(ring.ids());
            if !unchanged {
                self.set_ring(ring);
            }
        }
        Ok(self.ring())
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Says at start-up, rather than at the first delivery, when stored secrets need a
    /// key the ring does not have.
    async fn warn_about_missing_keys(&self) -> Result<()> {
        let ring = self.ring();
        for (key_id, count) in self.store.channel_secret_key_ids().await? {
            if !ring.ids().any(|id| id.to_string() == key_id) {
                tracing::warn!(
                    key_id,
                    secrets = count,
                    keys = %self.source.describe(),
                    "stored channel secrets are sealed under a master key that is not in the key ring; deliveries that need them will fail"
                );
            }
        }
        Ok(())
    }
}

/// Reads a key from `path`, or when `path` does not exist, creates it (0600) holding a fresh
/// key. The second value says whether it was created. For `--new-key-file`.
pub fn load_or_create_key_file(path: &Path) -> Result<(MasterKey, bool)> {
    if let Some(ring) = read_key_file(path)? {
        return Ok((ring.current().clone(), false));
    }
    let key = MasterKey::generate();
    let ring = KeyRing::new(key.clone(), []);
    if create_private_file(path, &ring.to_file_text())? {
        Ok((key, true))
    } else {
        let ring = read_key_file(path)?.ok_or_else(|| Error::KeyFile {
            action: "read",
            path: path.to_path_buf(),
            source: io::ErrorKind::NotFound.into(),
        })?;
        Ok((ring.current().clone(), false))
    }
}

/// What a sealed secret is bound to: a ciphertext opens only in the row it was sealed for.
fn record_identity(channel: &str, name: &str) -> String {
    // Neither name may contain `/` (see `check_names`), so identities cannot collide.
    format!("channel-secret:{channel}/{name}")
}

fn check_names(channel: &str, name: &str) -> Result<()> {
    // An endpoint's secrets are kept under its channel name, `endpoint:<id>`.
    let endpoint = routing::endpoints::endpoint_id(channel)
        .is_some_and(|id| !id.is_empty() && id.len() <= 64 && !id.contains('/'));
    if !routing::is_valid_name(channel) && !endpoint {
        return Err(Error::Invalid(format!(
            "`{channel}` is not a channel name: use 1 to 64 of `a-z`, `0-9`, `-` and `_`"
        )));
    }
    if !routing::is_valid_secret_name(name) {
        return Err(Error::Invalid(format!(
            "`{name}` is not a secret name: use letters, digits, `_`, `-` and `.`"
        )));
    }
    Ok(())
}

/// Seals `plaintext` under `key`, bound to `identity`.
fn seal(key: &MasterKey, identity: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut sealed = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    sealed.push(FORMAT_VERSION);
    sealed.extend_from_slice(&key.id.0);
    let aad = associated_data(&sealed, identity);
    sealed.extend_from_slice(&nonce);
    let ciphertext = key
        .cipher()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .expect("AES-GCM seals any plaintext of this size");
    sealed.extend_from_slice(&ciphertext);
    sealed
}

#[derive(Debug, PartialEq, Eq)]
enum OpenError {
    /// Not something `seal` wrote.
    Malformed,
    /// Sealed under a key the ring does not have.
    UnknownKey(KeyId),
    /// The tag does not verify: altered, another record's, or the wrong key.
    Rejected,
}

impl OpenError {
    fn about(self, channel: &str, name: &str) -> Error {
        let (channel, name) = (channel.to_owned(), name.to_owned());
        match self {
            OpenError::UnknownKey(id) => Error::UnknownKey {
                channel,
                name,
                key_id: id.to_string(),
            },
            OpenError::Malformed | OpenError::Rejected => Error::Unreadable { channel, name },
        }
    }
}

/// The key id a sealed value names, if it is one.
fn sealed_key_id(sealed: &[u8]) -> Option<KeyId> {
    if sealed.len() < HEADER_LEN + TAG_LEN || sealed[0] != FORMAT_VERSION {
        return None;
    }
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&sealed[1..AUTHENTICATED_HEADER_LEN]);
    Some(KeyId(id))
}

/// Opens what [`seal`] sealed for `identity`, with the ring's key of the id it names.
fn open_sealed(ring: &KeyRing, identity: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    let id = sealed_key_id(sealed).ok_or(OpenError::Malformed)?;
    let key = ring.get(id).ok_or(OpenError::UnknownKey(id))?;
    let aad = associated_data(&sealed[..AUTHENTICATED_HEADER_LEN], identity);
    key.cipher()
        .decrypt(
            Nonce::from_slice(&sealed[AUTHENTICATED_HEADER_LEN..HEADER_LEN]),
            Payload {
                msg: &sealed[HEADER_LEN..],
                aad: &aad,
            },
        )
        .map_err(|_| OpenError::Rejected)
}

fn associated_data(header: &[u8], identity: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + identity.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(identity.as_bytes());
    aad
}

/// The key ring in `path`; `None` when the file does not exist.
fn read_key_file(path: &Path) -> Result<Option<KeyRing>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::KeyFile {
                action: "read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    #[cfg(unix)]
    if let Ok(metadata) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the master key file can be read by other users; chmod 600 it");
        }
    }
    KeyRing::parse(&text, &path.display().to_string()).map(Some)
}

/// Keeps a retired key in `<key file>.old-<key id>`, once.
fn keep_retired_key(key_file: &Path, key: &MasterKey) -> Result<PathBuf> {
    let mut name = key_file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".old-{}", key.id));
    let path = key_file.with_file_name(name);
    let text = format!(
        "# A retired Switchyard master key. It opens only secrets in database backups taken\n\
         # before it was retired; delete this file when no such backup is needed.\n\
         {}  # key id {}\n",
        key.to_base64(),
        key.id
    );
    if !create_private_file(&path, &text)? {
        // Kept by an earlier rotation that stopped half-way: it must be the same key.
        let kept = read_key_file(&path)?;
        if kept.is_none_or(|ring| ring.current().id != key.id) {
            return Err(Error::Invalid(format!(
                "{} exists but does not hold key {}; move it away and rotate again",
                path.display(),
                key.id
            )));
        }
    }
    Ok(path)
}

/// Creates `path` holding `text`, readable by its owner only, unless it exists: true when it
/// was created. The file appears whole or not at all.
fn create_private_file(path: &Path, text: &str) -> Result<bool> {
    let temporary = write_private_temporary(path, text)?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            sync_parent(path)?;
            Ok(true)
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // A file system without hard links: create in place, still 0600 from the start.
        Err(_) => match open_private(path) {
            Ok(mut file) => {
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|source| Error::KeyFile {
                        action: "write",
                        path: path.to_path_buf(),
                        source,
                    })?;
                sync_parent(path)?;
                Ok(true)
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(source) => Err(Error::KeyFile {
                action: "create",
                path: path.to_path_buf(),
                source,
            }),
        },
    }
}

/// Replaces `path` with `text` in one step (a rename), readable by its owner only.
fn replace_private_file(path: &Path, text: &str) -> Result<()> {
    let temporary = write_private_temporary(path, text)?;
    if let Err(source) = std::fs::rename(&temporary, path) {
        let _ = std::fs::remove_file(&temporary);
        return Err(Error::KeyFile {
            action: "replace",
            path: path.to_path_buf(),
            source,
        });
    }
    sync_parent(path)
}

/// Writes `text` to a new, private, synced file beside `path`, and returns its path.
fn write_private_temporary(path: &Path, text: &str) -> Result<PathBuf> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::KeyFile {
            action: "create the directory of",
            path: path.to_path_buf(),
            source,
        })?;
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{:08x}", rand::rng().next_u32()));
    let temporary = path.with_file_name(name);
    let written = open_private(&temporary).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(Error::KeyFile {
            action: "write",
            path: temporary,
            source,
        });
    }
    Ok(temporary)
}

/// Creates a new file that only its owner can read or write, from the moment it exists.
fn open_private(path: &Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

/// Makes a rename or link in `path`'s directory durable.
fn sync_parent(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => dir,
            None => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| Error::KeyFile {
                action: "sync the directory of",
                path: path.to_path_buf(),
                source,
            })?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_of(key: &MasterKey) -> KeyRing {
        KeyRing::new(key.clone(), [])
    }

    async fn store_in(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}", dir.path().join("switchyard.db").display());
        Store::open(&url).await.unwrap()
    }

    async fn file_vault(dir: &tempfile::TempDir) -> Vault {
        let source = KeySource::File(dir.path().join("master.key"));
        Vault::open(store_in(dir).await, source).await.unwrap()
    }

    #[test]
    fn sealed_values_round_trip_and_carry_their_key_id() {
        let key = MasterKey::generate();
        let identity = record_identity("ops-webhook", "signing_key");
        let sealed = seal(&key, &identity, b"whsec_b3Bz");
        assert_eq!(sealed_key_id(&sealed), Some(key.id()));
        assert_eq!(&sealed[1..5], &key.id().0);
        assert_eq!(sealed.len(), HEADER_LEN + b"whsec_b3Bz".len() + TAG_LEN);
        assert!(!sealed.windows(10).any(|w| w == b"whsec_b3Bz"));
        let opened = open_sealed(&ring_of(&key), &identity, &sealed).unwrap();
        assert_eq!(opened, b"whsec_b3Bz");
        // A fresh nonce each time: sealing the same value twice gives different bytes.
        assert_ne!(seal(&key, &identity, b"whsec_b3Bz"), sealed);
    }

    #[test]
    fn a_ciphertext_moved_to_another_record_does_not_open() {
        let key = MasterKey::generate();
        let ring = ring_of(&key);
        let sealed = seal(&key, &record_identity("ops", "signing_key"), b"value");
        for (channel, name) in [("ops", "api_token"), ("sms", "signing_key")] {
            assert_eq!(
                open_sealed(&ring, &record_identity(channel, name), &sealed),
                Err(OpenError::Rejected),
                "{channel}/{name}"
            );
        }
    }

    #[test]
    fn the_wrong_key_does_not_open() {
        let key = MasterKey::generate();
        let identity = record_identity("ops", "signing_key");
        let sealed = seal(&key, &identity, b"value");
        let other = MasterKey::generate();
        assert_eq!(
            open_sealed(&ring_of(&other), &identity, &sealed),
            Err(OpenError::UnknownKey(key.id()))
        );
        // Another key that claims the same id still fails on the tag.
        let impostor = MasterKey {
            bytes: other.bytes,
            id: key.id(),
        };
        assert_eq!(
            open_sealed(&ring_of(&impostor), &identity, &sealed),
            Err(OpenError::Rejected)
        );
    }

    #[test]
    fn tampered_ciphertexts_do_not_open() {
        let key = MasterKey::generate();
        let ring = ring_of(&key);
        let identity = record_identity("ops", "signing_key");
        let sealed = seal(&key, &identity, b"value");
        for index in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[index] ^= 0x01;
            assert!(
                open_sealed(&ring, &identity, &tampered).is_err(),
                "flipping byte {index}"
            );
        }
        assert_eq!(
            open_sealed(&ring, &identity, &sealed[..sealed.len() - 1]),
            Err(OpenError::Rejected)
        );
        assert_eq!(
            open_sealed(&ring, &identity, &sealed[..HEADER_LEN]),
            Err(OpenError::Malformed)
        );
    }

    #[test]
    fn key_ids_are_derived_from_the_key() {
        let key = MasterKey::from_bytes([7; 32]);
        assert_eq!(key.id(), MasterKey::from_bytes([7; 32]).id());
        assert_ne!(key.id(), MasterKey::from_bytes([8; 32]).id());
        assert_eq!(key.id().to_string().len(), 8);
        let read = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(read.id(), key.id());
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }

    #[test]
    fn key_rings_read_lines_commas_and_comments() {
        let (a, b) = (MasterKey::generate(), MasterKey::generate());
        let ring = KeyRing::parse(
            &format!(
                "# keys\n{}  # current\n\n{}\n",
                a.to_base64(),
                b.to_base64()
            ),
            "master.key",
        )
        .unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), [a.id(), b.id()]);
        let ring = KeyRing::parse(&format!("{},{}", b.to_base64(), a.to_base64()), "env").unwrap();
        assert_eq!(ring.current().id(), b.id());
        assert_eq!(
            KeyRing::parse(&ring.to_file_text(), "file")
                .unwrap()
                .ids()
                .collect::<Vec<_>>(),
            [b.id(), a.id()]
        );

        let short = BASE64.encode([1u8; 16]);
        let error = KeyRing::parse(&format!("# c\n{short}\n"), "master.key").unwrap_err();
        assert_eq!(
            error.to_string(),
            "master.key, line 2: a master key must be base64 of 32 bytes; this is 16 bytes"
        );
        let error = KeyRing::parse("# nothing\n", "SWITCHYARD_MASTER_KEY").unwrap_err();
        assert!(error.to_string().contains("holds no master key"), "{error}");
        let error = KeyRing::parse("not-base64!", "env").unwrap_err();
        assert!(!error.to_string().contains("not-base64!"), "{error}");
    }

    #[tokio::test]
    async fn the_first_run_creates_a_private_key_file_and_later_runs_reuse_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let vault = file_vault(&dir).await;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("key id {}", vault.current_key_id())));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        vault.set("ops", "signing_key", "whsec_b3Bz").await.unwrap();
        let again = file_vault(&dir).await;
        assert_eq!(again.current_key_id(), vault.current_key_id());
        assert_eq!(
            again.get("ops", "signing_key").await.unwrap().as_deref(),
            Some("whsec_b3Bz")
        );
    }

    #[tokio::test]
    async fn a_lost_key_file_is_not_silently_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let vault = file_vault(&dir).await;
        vault.set("ops", "signing_key", "value").await.unwrap();
        std::fs::remove_file(dir.path().join("master.key")).unwrap();
        let source = KeySource::File(dir.path().join("master.key"));
        let error = Vault::open(store_in(&dir).await, source).await.unwrap_err();
        assert!(matches!(error, Error::KeyFileMissing { .. }), "{error}");
        assert!(!dir.path().join("master.key").exists());
    }

    #[tokio::test]
    async fn secrets_are_stored_sealed_and_listed_without_values() {
        let dir = tempfile::tempdir().unwrap();
        let vault = file_vault(&dir).await;
        assert_eq!(vault.get("ops", "signing_key").await.unwrap(), None);
        vault.set("ops", "signing_key", "first").await.unwrap();
        vault.set("ops", "signing_key", "whsec_b3Bz").await.unwrap();
        vault.set("sms", "api_token", "tok").await.unwrap();
        assert_eq!(
            vault.get("ops", "signing_key").await.unwrap().as_deref(),
            Some("whsec_b3Bz")
        );

        let (sealed, key_id) = vault
            .store
            .channel_secret("ops", "signing_key")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key_id, vault.current_key_id().to_string());
        assert!(!sealed.windows(10).any(|w| w == b"whsec_b3Bz"));

        let listed = vault.stored().await.unwrap();
        let names: Vec<(&str, &str)> = listed
            .iter()
            .map(|s| (s.channel.as_str(), s.name.as_str()))
            .collect();
        assert_eq!(names, [("ops", "signing_key"), ("sms", "api_token")]);
        assert!(!serde_json::to_string(&listed).unwrap().contains("whsec_"));

        assert!(vault.remove("sms", "api_token").await.unwrap());
        assert!(!vault.remove("sms", "api_token").await.unwrap());
        assert_eq!(vault.get("sms", "api_token").await.unwrap(), None);

        for (channel, name, value) in [
            ("Ops", "signing_key", "v"),
            ("ops", "a/b", "v"),
            ("ops", "signing_key", ""),
        ] {
            let error = vault.set(channel, name, value).await.unwrap_err();
            assert!(matches!(error, Error::Invalid(_)), "{error}");
        }
        let huge = "x".repeat(MAX_VALUE_BYTES + 1);
        assert!(vault.set("ops", "signing_key", &huge).await.is_err());
    }

    #[tokio::test]
    async fn a_row_copied_over_another_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let vault = file_vault(&dir).await;
        vault.set("ops", "signing_key", "ops-value").await.unwrap();
        let (sealed, key_id) = vault
            .store
            .channel_secret("ops", "signing_key")
            .await
            .unwrap()
            .unwrap();
        vault
            .store
            .set_channel_secret("sms", "api_token", &sealed, &key_id)
            .await
            .unwrap();
        let error = vault.get("sms", "api_token").await.unwrap_err();
        assert!(matches!(error, Error::Unreadable { .. }), "{error}");
    }

    #[tokio::test]
    async fn rotation_reseals_everything_and_retires_the_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let vault = file_vault(&dir).await;
        let old_id = vault.current_key_id();
        let old_text = std::fs::read_to_string(&path).unwrap();
        for (channel, name, value) in [("ops", "signing_key", "a"), ("sms", "api_token", "b")] {
            vault.set(channel, name, value).await.unwrap();
        }
        let mut before = Vec::new();
        for (channel, name) in [("ops", "signing_key"), ("sms", "api_token")] {
            let (sealed, _) = vault
                .store
                .channel_secret(channel, name)
                .await
                .unwrap()
                .unwrap();
            before.push(sealed);
        }

        let rotation = vault.rotate(None).await.unwrap();
        assert_ne!(rotation.new_key_id, old_id);
        assert_eq!(rotation.resealed, 2);
        assert_eq!(rotation.retired, [old_id]);
        assert_eq!(vault.current_key_id(), rotation.new_key_id);

        // Every row is under the new key, and none of the old ciphertexts is left.
        let new_id = rotation.new_key_id.to_string();
        for info in vault.stored().await.unwrap() {
            assert_eq!(info.key_id, new_id);
            let (sealed, _) = vault
                .store
                .channel_secret(&info.channel, &info.name)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(sealed_key_id(&sealed), Some(rotation.new_key_id));
            assert!(!before.contains(&sealed));
        }
        assert_eq!(
            vault.store.channel_secret_key_ids().await.unwrap(),
            [(new_id.clone(), 2)]
        );

        // The key file holds only the new key; the old one is kept apart, privately.
        let ring = read_key_file(&path).unwrap().unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), [rotation.new_key_id]);
        let kept = dir.path().join(format!("master.key.old-{old_id}"));
        assert_eq!(rotation.retired_files, vec![kept.clone()]);
        let kept_ring = read_key_file(&kept).unwrap().unwrap();
        assert_eq!(kept_ring.current().id(), old_id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }

        // A fresh process with the new file reads everything; the old key opens nothing.
        let reopened = file_vault(&dir).await;
        assert_eq!(
            reopened.get("sms", "api_token").await.unwrap().as_deref(),
            Some("b")
        );
        std::fs::write(&path, old_text).unwrap();
        let with_old_key = file_vault(&dir).await;
        let error = with_old_key.get("ops", "signing_key").await.unwrap_err();
        assert!(matches!(error, Error::UnknownKey { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_running_vault_follows_a_rotation_made_by_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let hub = file_vault(&dir).await;
        hub.set("ops", "signing_key", "value").await.unwrap();
        let command_line = file_vault(&dir).await;
        let rotation = command_line.rotate(None).await.unwrap();
        assert_eq!(
            hub.get("ops", "signing_key").await.unwrap().as_deref(),
            Some("value")
        );
        hub.set("sms", "api_token", "other").await.unwrap();
        let (_, key_id) = hub
            .store
            .channel_secret("sms", "api_token")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key_id, rotation.new_key_id.to_string());
        // What it signs for every process now comes from the new key alone.
        assert_eq!(
            hub.derived_keys("portal-link"),
            command_line.derived_keys("portal-link")
        );
        assert_eq!(hub.derived_keys("portal-link").len(), 1);
    }

    #[tokio::test]
    async fn a_rotation_interrupted_after_the_first_step_leaves_everything_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let vault = file_vault(&dir).await;
        vault.set("ops", "signing_key", "value").await.unwrap();
        // What the first step leaves: the new key first, the old one after it.
        let old = read_key_file(&path).unwrap().unwrap();
        let both = KeyRing::new(MasterKey::generate(), old.keys.iter().cloned());
        replace_private_file(&path, &both.to_file_text()).unwrap();
        let after_crash = file_vault(&dir).await;
        assert_eq!(
            after_crash
                .get("ops", "signing_key")
                .await
                .unwrap()
                .as_deref(),
            Some("value")
        );
        // Rotating again from there retires both earlier keys.
        let rotation = after_crash.rotate(None).await.unwrap();
        assert_eq!(rotation.retired.len(), 2);
        assert_eq!(
            after_crash
                .get("ops", "signing_key")
                .await
                .unwrap()
                .as_deref(),
            Some("value")
        );
    }

    #[tokio::test]
    async fn environment_keys_rotate_only_to_a_key_the_operator_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let old = MasterKey::generate();
        let store = store_in(&dir).await;
        let vault = Vault::open(store.clone(), KeySource::Env(old.to_base64()))
            .await
            .unwrap();
        assert!(!dir.path().join("master.key").exists());
        vault.set("ops", "signing_key", "value").await.unwrap();
        assert!(matches!(
            vault.rotate(None).await,
            Err(Error::EnvKeyNeedsNewKey)
        ));

        let new_key_file = dir.path().join("new.key");
        let (new_key, created) = load_or_create_key_file(&new_key_file).unwrap();
        assert!(created);
        assert_eq!(
            load_or_create_key_file(&new_key_file).unwrap().0.id(),
            new_key.id()
        );
        let rotation = vault.rotate(Some(new_key.clone())).await.unwrap();
        assert_eq!(rotation.resealed, 1);
        assert!(rotation.retired_files.is_empty());

        // The operator now sets the variable to the new file's contents.
        let text = std::fs::read_to_string(&new_key_file).unwrap();
        let next_start = Vault::open(store, KeySource::Env(text)).await.unwrap();
        assert_eq!(next_start.current_key_id(), new_key.id());
        assert_eq!(
            next_start
                .get("ops", "signing_key")
                .await
                .unwrap()
                .as_deref(),
            Some("value")
        );
    }

    #[test]
    fn statuses_merge_declared_and_stored_secrets() {
        let table = RouteTable::parse(
            "channels:\n  ops:\n    plugin: log\n    secrets: [signing_key, api_token]\n  env:\n    plugin: log\n    secrets: { token: x }\nroutes:\n  - {name: r, match: {}, to: [ops, env]}\n",
            "routes.yaml",
            &|_| None,
            &routing::BuiltinCatalog,
        )
        .unwrap();
        let stored = vec![
            SecretInfo {
                channel: "gone".into(),
                name: "old".into(),
                key_id: "00000000".into(),
                updated_at: 1,
            },
            SecretInfo {
                channel: "ops".into(),
                name: "signing_key".into(),
                key_id: "0a0b0c0d".into(),
                updated_at: 2,
            },
        ];
        let statuses = secret_statuses(&table, stored);
        let summary: Vec<(&str, &str, bool, bool)> = statuses
            .iter()
            .map(|s| (s.channel.as_str(), s.name.as_str(), s.set, s.declared))
            .collect();
        assert_eq!(
            summary,
            [
                ("gone", "old", true, false),
                ("ops", "api_token", false, true),
                ("ops", "signing_key", true, true),
            ]
        );
        assert_eq!(statuses[2].key_id.as_deref(), Some("0a0b0c0d"));
        assert!(is_declared(&table, "ops", "api_token"));
        assert!(!is_declared(&table, "env", "token"));
        assert!(!is_declared(&table, "nope", "api_token"));
    }
}
