//! API tokens: stored as SHA-256 digests, shown in full only once, at creation.
//!
//! Each token holds one or more scopes, which say what it may do:
//!
//! - `send`: create notifications (REST send and batch, the GraphQL send mutations, frames
//!   sent over `/ws`).
//! - `read`: read notifications, deliveries, attempts and dead letters; GraphQL queries of
//!   them; subscribing to live events and listening on `websocket` channels over `/ws` or
//!   GraphQL subscriptions.
//! - `admin`: plugins, routes (reading, validating, reloading), tokens, replaying dead
//!   letters. `admin` includes `read`: an operator looks at what they change.
//!
//! `send` stands apart: a token that only reads (a dashboard) or administers (a deploy
//! script) cannot inject notifications, and a sender cannot read what others sent. An
//! `admin` token can still mint a token of any scope, so `admin` is the root of trust.

use std::fmt;

use serde::{Serialize, Serializer};

use super::backend::on_pool;
use super::{Result, Store, now_ms};
use crate::crypto;

/// One thing a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Send,
    Read,
    Admin,
}

impl Scope {
    /// Every scope, in the order they are listed.
    pub const ALL: [Scope; 3] = [Scope::Send, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Send => 1,
            Scope::Read => 2,
            Scope::Admin => 4,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not a scope; the scopes are send, read and admin"))
    }
}

/// The scopes a token holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// What a token gets when its creator names no scope: it may send notifications and
    /// follow them, not change the hub. Administering is always asked for by name.
    pub const DEFAULT: Scopes = Scopes(1 | 2);
    /// Everything: the first token a hub prints, and tokens made before scopes existed.
    pub const ALL: Scopes = Scopes(1 | 2 | 4);

    pub fn of(scopes: impl IntoIterator<Item = Scope>) -> Scopes {
        Scopes(scopes.into_iter().fold(0, |bits, scope| bits | scope.bit()))
    }

    /// `scopes`, or [`Scopes::DEFAULT`] when there are none.
    pub fn or_default(scopes: impl IntoIterator<Item = Scope>) -> Scopes {
        match Scopes::of(scopes) {
            Scopes(0) => Scopes::DEFAULT,
            given => given,
        }
    }

    /// Whether a token with these scopes may do what needs `scope`: it holds it, or holds
    /// `admin` where `read` is needed.
    pub fn allow(self, scope: Scope) -> bool {
        self.holds(scope) || (scope == Scope::Read && self.holds(Scope::Admin))
    }

    /// Whether `scope` is among these, as granted (not implied).
    pub fn holds(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.holds(*s))
    }

    /// The words, as stored: `send read admin`.
    pub fn to_words(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    /// Reads the stored words. An unknown word grants nothing.
    pub fn from_words(words: &str) -> Scopes {
        Scopes::of(words.split_whitespace().filter_map(|w| w.parse().ok()))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&words.join(", "))
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Scope::as_str))
    }
}

/// A token just created: the only time its secret exists outside the caller's hands.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub scopes: Scopes,
    /// The tenant it is confined to, if any.
    pub tenant: Option<String>,
    pub token: String,
}

/// A stored token, without its secret.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub digest: Vec<u8>,
    pub scopes: Scopes,
    /// The tenant it is confined to: such a token reaches only that tenant's endpoints,
    /// deliveries and sends, and nothing of the hub's own.
    pub tenant: Option<String>,
    pub created_at: i64,
}

impl Store {
    /// Creates a token named `name` holding `scopes` and returns it with its secret.
    pub async fn create_token(
        &self,
        name: &str,
        scopes: Scopes,
        tenant: Option<&str>,
    ) -> Result<NewToken> {
        let token = crypto::generate_token();
        let id = uuid::Uuid::now_v7().to_string();
        let digest = crypto::token_digest(&token);
        on_pool!(&self.writer, |pool, Db, dialect| {
            sqlx::query(
                "INSERT INTO api_tokens (id, name, digest, scopes, tenant, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(name)
            .bind(digest.as_slice())
            .bind(scopes.to_words())
            .bind(tenant)
            .bind(now_ms())
            .execute(pool)
            .await?;
        });
        Ok(NewToken {
            id,
            name: name.to_string(),
            scopes,
            tenant: tenant.map(str::to_owned),
            token,
        })
    }

    /// The tokens that are not revoked.
    pub async fn active_tokens(&self) -> Result<Vec<TokenRecord>> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(String, String, Vec<u8>, String, Option<String>, i64)> =
            on_pool!(&self.writer, |pool, Db, dialect| {
                sqlx::query_as(
                    "SELECT id, name, digest, scopes, tenant, created_at FROM api_tokens \
                     WHERE revoked_at IS NULL ORDER BY created_at",
                )
                .fetch_all(pool)
                .await?
            });
        Ok(rows
            .into_iter()
            .map(
                |(id, name, digest, scopes, tenant, created_at)| TokenRecord {
                    id,
                    name,
                    digest,
                    scopes: Scopes::from_words(&scopes),
                    tenant,
                    created_at,
                },
            )
            .collect())
    }

    /// Revokes a token; false when there was no such active token.
    pub async fn revoke_token(&self, id: &str) -> Result<bool> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            let done = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_read_but_not_send() {
        let admin = Scopes::of([Scope::Admin]);
        assert!(admin.allow(Scope::Admin));
        assert!(admin.allow(Scope::Read));
        assert!(!admin.allow(Scope::Send));
        let read = Scopes::of([Scope::Read]);
        assert!(read.allow(Scope::Read));
        assert!(!read.allow(Scope::Admin));
        assert!(!read.allow(Scope::Send));
        let send = Scopes::of([Scope::Send]);
        assert!(send.allow(Scope::Send));
        assert!(!send.allow(Scope::Read));
    }

    #[test]
    fn words_round_trip_and_unknown_words_grant_nothing() {
        assert_eq!(Scopes::ALL.to_words(), "send read admin");
        assert_eq!(
            Scopes::from_words("admin send"),
            Scopes::of([Scope::Send, Scope::Admin])
        );
        assert_eq!(Scopes::from_words("root everything"), Scopes::default());
        assert_eq!(Scopes::or_default([]), Scopes::DEFAULT);
        assert_eq!(Scopes::DEFAULT.to_string(), "send, read");
    }

    /// A token row written without its scopes, as every row before the scopes migration
    /// was (and as an older binary still writes during a rolling upgrade), keeps full access.
    #[tokio::test]
    async fn a_token_stored_without_scopes_keeps_full_access() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
        let store = Store::open(&url).await.unwrap();
        on_pool!(&store.writer, |pool, Db, dialect| {
            sqlx::query(
                "INSERT INTO api_tokens (id, name, digest, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind("old")
            .bind("from before scopes")
            .bind(crypto::token_digest("sy_old").as_slice())
            .bind(now_ms())
            .execute(pool)
            .await
            .unwrap();
        });
        let fresh = store
            .create_token("reader", Scopes::of([Scope::Read]), None)
            .await
            .unwrap();
        let active = store.active_tokens().await.unwrap();
        let scopes_of = |id: &str| active.iter().find(|t| t.id == id).unwrap().scopes;
        assert_eq!(scopes_of("old"), Scopes::ALL);
        assert_eq!(scopes_of(&fresh.id), Scopes::of([Scope::Read]));
        store.close().await;
    }
}
