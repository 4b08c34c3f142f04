//! Customer portal sessions, as rows: what [`crate::portal`] needs shared by every process
//! of a deployment, so a link spent on one is spent on all, and a session opened on one
//! is known to all.

use super::backend::{on_pool, on_writer};
use super::{Result, Store};

/// A live portal session.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PortalSession {
    pub tenant_id: String,
    /// When its tenant was created, as the link that opened it said.
    pub tenant_born: i64,
    pub expires_at: i64,
}

/// A session to open on a link.
#[derive(Debug, Clone)]
pub struct NewPortalSession<'a> {
    /// The link's id: the row's key, so the link opens at most one session.
    pub link_id: &'a str,
    /// The digest of the session cookie.
    pub session_digest: &'a str,
    pub tenant_id: &'a str,
    /// When the tenant was created (the link's `born`).
    pub tenant_born: i64,
    pub now: i64,
    pub expires_at: i64,
    /// When the link itself expires: the row is kept until then at least.
    pub link_expires_at: i64,
}

impl Store {
    /// Spends the link on a new session; false when the link was spent before (on any
    /// process). Rows whose session and link have both expired are swept out first.
    pub async fn open_portal_session(&self, new: &NewPortalSession<'_>) -> Result<bool> {
        let keep_until = new.expires_at.max(new.link_expires_at);
        on_writer!(self, "open_portal_session", Nothing, |pool, Db, dialect| {
            sqlx::query("DELETE FROM portal_sessions WHERE keep_until < $1")
                .bind(new.now)
                .execute(pool)
                .await?;
            let done = sqlx::query(
                "INSERT INTO portal_sessions \
                 (link_id, session_digest, tenant_id, tenant_born, created_at, expires_at, keep_until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (link_id) DO NOTHING",
            )
            .bind(new.link_id)
            .bind(new.session_digest)
            .bind(new.tenant_id)
            .bind(new.tenant_born)
            .bind(new.now)
            .bind(new.expires_at)
            .bind(keep_until)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The session whose cookie has `session_digest`, unless it has ended by `now`.
    pub async fn portal_session(
        &self,
        session_digest: &str,
        now: i64,
    ) -> Result<Option<PortalSession>> {
        on_pool!(&self.reader, |pool, Db, dialect| {
            Ok(sqlx::query_as(
                "SELECT tenant_id, tenant_born, expires_at FROM portal_sessions \
                 WHERE session_digest = $1 AND expires_at > $2",
            )
            .bind(session_digest)
            .bind(now)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Ends a session now. The row stays (until `keep_until`): deleting it would make its
    /// link usable again while the link has not expired.
    pub async fn end_portal_session(&self, session_digest: &str, now: i64) -> Result<()> {
        on_writer!(self, "end_portal_session", Nothing, |pool, Db, dialect| {
            sqlx::query(
                "UPDATE portal_sessions SET expires_at = $2 \
                 WHERE session_digest = $1 AND expires_at > $2",
            )
            .bind(session_digest)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }
}
