//! API token checks. Tokens live in the store as SHA-256 digests; the hub keeps the active
//! ones in memory, refreshed when they change here and every few seconds, so a token
//! created or revoked by another process is seen soon without a query per request.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::crypto;
use crate::store::{self, NewToken, Store, TokenRecord};

/// How often the active tokens are re-read from the store.
const REFRESH: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Tokens {
    store: Store,
    active: Arc<RwLock<Vec<TokenRecord>>>,
}

impl Tokens {
    /// Reads the active tokens and keeps them fresh in the background.
    pub async fn load(store: Store) -> store::Result<Tokens> {
        let tokens = Tokens {
            active: Arc::new(RwLock::new(store.active_tokens().await?)),
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

    async fn refresh(&self) -> store::Result<()> {
        let fresh = self.store.active_tokens().await?;
        *self.active.write().expect("tokens lock") = fresh;
        Ok(())
    }

    /// The token's record if `token` is active. Every stored digest is compared in
    /// constant time, so the time taken says nothing about which, or how much, matched.
    pub fn verify(&self, token: &str) -> Option<TokenRecord> {
        let digest = crypto::token_digest(token);
        let active = self.active.read().expect("tokens lock");
        let mut found = None;
        for record in active.iter() {
            if crypto::constant_time_eq(&record.digest, &digest) {
                found = Some(record.clone());
            }
        }
        found
    }

    /// Whether any token exists yet (the first start creates one).
    pub fn is_empty(&self) -> bool {
        self.active.read().expect("tokens lock").is_empty()
    }

    pub async fn create(&self, name: &str) -> store::Result<NewToken> {
        let token = self.store.create_token(name).await?;
        self.refresh().await?;
        Ok(token)
    }

    pub async fn revoke(&self, id: &str) -> store::Result<bool> {
        let revoked = self.store.revoke_token(id).await?;
        self.refresh().await?;
        Ok(revoked)
    }

    pub fn list(&self) -> Vec<TokenRecord> {
        self.active.read().expect("tokens lock").clone()
    }
}
