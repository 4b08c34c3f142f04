//! Channel secrets, as the vault seals them: the store only ever sees ciphertexts.

use serde::Serialize;

use super::backend::{Dialect, on_pool};
use super::{Error, Result, Store, now_ms};

/// A stored secret without its value: what listings show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretInfo {
    pub channel: String,
    pub name: String,
    /// The master key the value is sealed under.
    pub key_id: String,
    /// When the value was last set (Unix ms); re-encryption does not change it.
    pub updated_at: i64,
}

/// One sealed secret, as handed to a re-encryption closure.
#[derive(Debug, Clone)]
pub struct SealedSecret {
    pub channel: String,
    pub name: String,
    pub ciphertext: Vec<u8>,
    pub key_id: String,
}

impl Store {
    /// Stores (or replaces) the sealed value of `channel`'s secret `name`.
    pub async fn set_channel_secret(
        &self,
        channel: &str,
        name: &str,
        ciphertext: &[u8],
        key_id: &str,
    ) -> Result<()> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            sqlx::query(
                "INSERT INTO channel_secrets (channel, name, ciphertext, key_id, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (channel, name) DO UPDATE SET \
                 ciphertext = excluded.ciphertext, key_id = excluded.key_id, \
                 updated_at = excluded.updated_at",
            )
            .bind(channel)
            .bind(name)
            .bind(ciphertext)
            .bind(key_id)
            .bind(now_ms())
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The sealed value of `channel`'s secret `name` and its key id, if it is set.
    pub async fn channel_secret(
        &self,
        channel: &str,
        name: &str,
    ) -> Result<Option<(Vec<u8>, String)>> {
        // The reader pool: deliveries read secrets, and must not queue behind the writer.
        on_pool!(&self.reader, |pool, Db, dialect| {
            Ok(sqlx::query_as(
                "SELECT ciphertext, key_id FROM channel_secrets WHERE channel = $1 AND name = $2",
            )
            .bind(channel)
            .bind(name)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Removes `channel`'s secret `name`; false when it was not set.
    pub async fn delete_channel_secret(&self, channel: &str, name: &str) -> Result<bool> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            let done = sqlx::query("DELETE FROM channel_secrets WHERE channel = $1 AND name = $2")
                .bind(channel)
                .bind(name)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Removes every secret of `channel`; returns how many there were.
    pub async fn delete_channel_secrets(&self, channel: &str) -> Result<u64> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            let done = sqlx::query("DELETE FROM channel_secrets WHERE channel = $1")
                .bind(channel)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// Every stored secret, without values, by channel then name.
    pub async fn channel_secrets_listing(&self) -> Result<Vec<SecretInfo>> {
        let rows: Vec<(String, String, String, i64)> =
            on_pool!(&self.reader, |pool, Db, dialect| {
                sqlx::query_as(
                    "SELECT channel, name, key_id, updated_at FROM channel_secrets \
                     ORDER BY channel, name",
                )
                .fetch_all(pool)
                .await?
            });
        Ok(rows
            .into_iter()
            .map(|(channel, name, key_id, updated_at)| SecretInfo {
                channel,
                name,
                key_id,
                updated_at,
            })
            .collect())
    }

    /// Re-seals stored secrets in one transaction: `reseal` gets every row and returns its
    /// new ciphertext and key id, or `None` to leave it as it is. If `reseal` fails for any
    /// row, nothing is changed and its error is returned, so a rotation is all or nothing.
    /// Returns how many rows were changed.
    pub async fn reseal_channel_secrets<E: From<Error>>(
        &self,
        mut reseal: impl FnMut(&SealedSecret) -> Result<Option<(Vec<u8>, String)>, E>,
    ) -> Result<usize, E> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            // No other process (a running hub setting a secret) may slip a row in between
            // the read and the writes: SQLite's IMMEDIATE takes the write lock before
            // reading; on PostgreSQL a table lock that still lets readers read.
            let mut tx = pool
                .begin_with(dialect.pick("BEGIN IMMEDIATE", "BEGIN"))
                .await
                .map_err(Error::from)?;
            if dialect == Dialect::Postgres {
                sqlx::query("LOCK TABLE channel_secrets IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await
                    .map_err(Error::from)?;
            }
            let rows: Vec<(String, String, Vec<u8>, String)> =
                sqlx::query_as("SELECT channel, name, ciphertext, key_id FROM channel_secrets")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(Error::from)?;
            let mut changed = 0;
            for (channel, name, ciphertext, key_id) in rows {
                let sealed = SealedSecret {
                    channel,
                    name,
                    ciphertext,
                    key_id,
                };
                let Some((ciphertext, key_id)) = reseal(&sealed)? else {
                    continue;
                };
                sqlx::query(
                    "UPDATE channel_secrets SET ciphertext = $1, key_id = $2 \
                     WHERE channel = $3 AND name = $4",
                )
                .bind(&ciphertext)
                .bind(&key_id)
                .bind(&sealed.channel)
                .bind(&sealed.name)
                .execute(&mut *tx)
                .await
                .map_err(Error::from)?;
                changed += 1;
            }
            tx.commit().await.map_err(Error::from)?;
            Ok(changed)
        })
    }

    /// The key ids stored secrets are sealed under, with how many secrets use each.
    pub async fn channel_secret_key_ids(&self) -> Result<Vec<(String, i64)>> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            Ok(sqlx::query_as(
                "SELECT key_id, COUNT(*) FROM channel_secrets GROUP BY key_id ORDER BY key_id",
            )
            .fetch_all(pool)
            .await?)
        })
    }
}
