//! Admin users, the failed sign-ins that lock an account, and the dashboard's counts.

use super::backend::on_pool;
use super::{Result, Store, now_ms};

/// A stored admin user.
#[derive(Debug, Clone)]
pub struct AdminUser {
    pub id: String,
    pub username: String,
    /// The argon2id PHC string.
    pub password_hash: String,
}

impl Store {
    /// Adds an admin; `Ok(false)` when the username is taken.
    pub async fn create_admin_user(&self, username: &str, password_hash: &str) -> Result<bool> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            let done = sqlx::query(
                "INSERT INTO admin_users (id, username, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(username)
            .bind(password_hash)
            .bind(now_ms())
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// How many admin users exist.
    pub async fn admin_user_count(&self) -> Result<i64> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM admin_users")
                .fetch_one(pool)
                .await?;
            Ok(count)
        })
    }

    /// The admin named `username`, if any.
    pub async fn admin_user(&self, username: &str) -> Result<Option<AdminUser>> {
        let row: Option<(String, String, String)> = on_pool!(&self.writer, |pool, Db, dialect| {
            sqlx::query_as(
                "SELECT id, username, password_hash FROM admin_users WHERE username = $1",
            )
            .bind(username)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(id, username, password_hash)| AdminUser {
            id,
            username,
            password_hash,
        }))
    }

    /// Failed sign-ins for `username` at or after `since`.
    pub async fn login_failures_since(&self, username: &str, since: i64) -> Result<i64> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            let (count,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM login_failures WHERE username = $1 AND failed_at >= $2",
            )
            .bind(username)
            .bind(since)
            .fetch_one(pool)
            .await?;
            Ok(count)
        })
    }

    /// Records a failed sign-in at `at`, and forgets those older than `forget_before`.
    pub async fn record_login_failure(
        &self,
        username: &str,
        at: i64,
        forget_before: i64,
    ) -> Result<()> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM login_failures WHERE failed_at < $1")
                .bind(forget_before)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO login_failures (username, failed_at) VALUES ($1, $2)")
                .bind(username)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Forgets the failed sign-ins of `username`, after it signs in or when an operator
    /// unlocks it; returns how many there were.
    pub async fn clear_login_failures(&self, username: &str) -> Result<u64> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            let done = sqlx::query("DELETE FROM login_failures WHERE username = $1")
                .bind(username)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// Notifications accepted at or after `since`, counting back from the newest; at most
    /// a million, so the dashboard stays quick however busy the hub is.
    pub async fn accepted_since(&self, since: i64) -> Result<i64> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            let (count,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM (SELECT created_at FROM notifications \
                 ORDER BY seq DESC LIMIT 1000000) AS recent WHERE created_at >= $1",
            )
            .bind(since)
            .fetch_one(pool)
            .await?;
            Ok(count)
        })
    }

    /// How many deliveries are dead letters.
    pub async fn dead_letter_count(&self) -> Result<i64> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            let (count,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM deliveries WHERE state = 'dead'")
                    .fetch_one(pool)
                    .await?;
            Ok(count)
        })
    }
}
