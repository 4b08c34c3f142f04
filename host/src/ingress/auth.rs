//! API token checks. Tokens live in the store as SHA-256 digests; the hub keeps the active
//! ones in memory, refreshed when they change here and every second, so a token created or
//! revoked by another process is seen soon without a query per request.
//!
//! Every front door checks a token's scopes with [`require`]; the long-lived sockets (`/ws`
//! and the GraphQL subscription socket) also wait on [`Tokens::revoked`] and close when
//! their token goes.

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use tokio::sync::watch;

use super::Problem;
use crate::crypto;
use crate::store::{self, NewToken, Scope, Scopes, Store, TokenRecord};

/// How often the active tokens are re-read from the store: the longest a token revoked by
/// another process keeps working here, its open sockets included. The read is one indexed
/// query over a table of a handful of rows.
const REFRESH: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Tokens {
    store: Store,
    /// The active tokens; a change wakes every socket waiting on [`Tokens::revoked`].
    active: Arc<watch::Sender<Arc<Vec<TokenRecord>>>>,
}

impl Tokens {
    /// Reads the active tokens and keeps them fresh in the background.
    pub async fn load(store: Store) -> store::Result<Tokens> {
        let (active, _) = watch::channel(Arc::new(store.active_tokens().await?));
        let tokens = Tokens {
            active: Arc::new(active),
            store,
        };
        let refresher = tokens.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                if let Err(error) = refresher.refresh().await {
                    tracing::warn!(%error, "could not refresh API tokens");
                }
            }
        });
        Ok(tokens)
    }

    /// Re-reads the active tokens; waiters are woken only when the set changed.
    async fn refresh(&self) -> store::Result<()> {
        let fresh = self.store.active_tokens().await?;
        self.active.send_if_modified(|current| {
            let same = current.len() == fresh.len()
                && current.iter().zip(&fresh).all(|(a, b)| a.id == b.id);
            if !same {
                *current = Arc::new(fresh);
            }
            !same
        });
        Ok(())
    }

    fn snapshot(&self) -> Arc<Vec<TokenRecord>> {
        self.active.borrow().clone()
    }

    /// The token's record if `token` is active. Every stored digest is compared in
    /// constant time, so the time taken says nothing about which, or how much, matched.
    pub fn verify(&self, token: &str) -> Option<TokenRecord> {
        let digest = crypto::token_digest(token);
        let mut found = None;
        for record in self.snapshot().iter() {
            if crypto::constant_time_eq(&record.digest, &digest) {
                found = Some(record.clone());
            }
        }
        found
    }

    /// Whether any token exists yet (the first start creates one).
    pub fn is_empty(&self) -> bool {
        self.snapshot().is_empty()
    }

    /// Creates a token; with `tenant`, one confined to that tenant.
    pub async fn create(
        &self,
        name: &str,
        scopes: Scopes,
        tenant: Option<&str>,
    ) -> store::Result<NewToken> {
        let token = self.store.create_token(name, scopes, tenant).await?;
        self.refresh().await?;
        Ok(token)
    }

    /// Revokes a token. Its open sockets on this process close at once; on other processes
    /// within [`REFRESH`].
    pub async fn revoke(&self, id: &str) -> store::Result<bool> {
        let revoked = self.store.revoke_token(id).await?;
        self.refresh().await?;
        Ok(revoked)
    }

    pub fn list(&self) -> Vec<TokenRecord> {
        self.snapshot().as_ref().clone()
    }

    /// Resolves once token `id` is no longer active: revoked here, or seen revoked in the
    /// store by the periodic refresh.
    pub async fn revoked(&self, id: &str) {
        let mut changes = self.active.subscribe();
        loop {
            if !changes.borrow_and_update().iter().any(|t| t.id == id) {
                return;
            }
            if changes.changed().await.is_err() {
                // The tokens are gone with the hub: nothing will revoke this one now.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Refuses `token` unless it may do what needs `scope`: 403 with a problem naming the
/// missing scope.
// The problem is built only on the refusal path, and callers need it by value.
#[allow(clippy::result_large_err)]
pub fn require(token: &TokenRecord, scope: Scope) -> Result<(), Problem> {
    // Everything that is not a tenant's own (every caller of this) is closed to a
    // tenant-scoped token: a new endpoint fails closed for tenants.
    if token.tenant.is_some() {
        return Err(wrong_tenant(token));
    }
    require_scope(token, scope)
}

/// Refuses `token` unless it may do what needs `scope` to tenant `tenant`'s own things:
/// an operator's token with the scope, or a token of that tenant with it. Another
/// tenant's token is refused the same way whether or not `tenant` exists.
#[allow(clippy::result_large_err)]
pub fn require_for_tenant(token: &TokenRecord, scope: Scope, tenant: &str) -> Result<(), Problem> {
    if token.tenant.as_deref().is_some_and(|own| own != tenant) {
        return Err(wrong_tenant(token));
    }
    require_scope(token, scope)
}

fn wrong_tenant(token: &TokenRecord) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        format!(
            "the API token `{}` is confined to one tenant and reaches only that tenant's \
             endpoints, deliveries and sends",
            token.name
        ),
    )
    .code("wrong-tenant")
}

#[allow(clippy::result_large_err)]
fn require_scope(token: &TokenRecord, scope: Scope) -> Result<(), Problem> {
    if token.scopes.allow(scope) {
        return Ok(());
    }
    let holds = match token.scopes.to_string() {
        held if held.is_empty() => "none".to_string(),
        held => held,
    };
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        format!(
            "the API token `{}` lacks the `{scope}` scope, which this needs (it holds: {holds}); \
             use a token with `{scope}` (`switchyard token create NAME --scope {scope}`)",
            token.name
        ),
    )
    .code("insufficient-scope"))
}
