//! API tokens: stored as SHA-256 digests, shown in full only once, at creation.

use serde::Serialize;

use super::backend::on_pool;
use super::{Result, Store, now_ms};
use crate::crypto;

/// A token just created: the only time its secret exists outside the caller's hands.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub token: String,
}

/// A stored token, without its secret.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub digest: Vec<u8>,
    pub created_at: i64,
}

impl Store {
    /// Creates a token named `name` and returns it with its secret.
    pub async fn create_token(&self, name: &str) -> Result<NewToken> {
        let token = crypto::generate_token();
        let id = uuid::Uuid::now_v7().to_string();
        let digest = crypto::token_digest(&token);
        on_pool!(&self.writer, |pool, Db, dialect| {
            sqlx::query(
                "INSERT INTO api_tokens (id, name, digest, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(name)
            .bind(digest.as_slice())
            .bind(now_ms())
            .execute(pool)
            .await?;
        });
        Ok(NewToken {
            id,
            name: name.to_string(),
            token,
        })
    }

    /// The tokens that are not revoked.
    pub async fn active_tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows: Vec<(String, String, Vec<u8>, i64)> =
            on_pool!(&self.writer, |pool, Db, dialect| {
                sqlx::query_as(
                    "SELECT id, name, digest, created_at FROM api_tokens \
                     WHERE revoked_at IS NULL ORDER BY created_at",
                )
                .fetch_all(pool)
                .await?
            });
        Ok(rows
            .into_iter()
            .map(|(id, name, digest, created_at)| TokenRecord {
                id,
                name,
                digest,
                created_at,
            })
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
