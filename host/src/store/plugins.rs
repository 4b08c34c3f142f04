//! Uploaded plugins: every version's component, which version is active, and whether the
//! plugin is enabled.

use super::backend::on_pool;
use super::{Result, Store, now_ms};

/// One stored version of an uploaded plugin, without its bytes.
#[derive(Debug, Clone)]
pub struct PluginVersion {
    pub version: i64,
    pub sha256: String,
    pub size: i64,
    pub uploaded_by: String,
    pub uploaded_at: i64,
}

/// An uploaded plugin: its world, versions (newest first) and settings.
#[derive(Debug, Clone)]
pub struct UploadedPlugin {
    pub name: String,
    pub world: String,
    pub active_version: i64,
    pub enabled: bool,
    pub versions: Vec<PluginVersion>,
}

/// One version of one plugin, with its plugin's settings.
#[derive(sqlx::FromRow)]
struct VersionRow {
    name: String,
    world: String,
    active_version: i64,
    enabled: bool,
    version: i64,
    sha256: String,
    size: i64,
    uploaded_by: String,
    uploaded_at: i64,
}

impl Store {
    /// Stores `component` as the next version of `name` and makes it the active one, in one
    /// transaction. Returns the new version number.
    pub async fn add_plugin_version(
        &self,
        name: &str,
        world: &str,
        sha256: &str,
        component: &[u8],
        uploaded_by: &str,
    ) -> Result<i64> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            let mut tx = pool.begin().await?;
            let (latest,): (Option<i64>,) =
                sqlx::query_as("SELECT MAX(version) FROM plugin_versions WHERE name = $1")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
            let version = latest.unwrap_or(0) + 1;
            sqlx::query(
                "INSERT INTO plugin_versions \
                 (name, version, world, sha256, component, uploaded_by, uploaded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(name)
            .bind(version)
            .bind(world)
            .bind(sha256)
            .bind(component)
            .bind(uploaded_by)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO plugin_settings (name, active_version, enabled) \
                 VALUES ($1, $2, TRUE) \
                 ON CONFLICT (name) DO UPDATE SET active_version = excluded.active_version",
            )
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(version)
        })
    }

    /// The component bytes of one version.
    pub async fn plugin_component(&self, name: &str, version: i64) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = on_pool!(&self.writer, |pool, Db, dialect| {
            sqlx::query_as("SELECT component FROM plugin_versions WHERE name = $1 AND version = $2")
                .bind(name)
                .bind(version)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(bytes,)| bytes))
    }

    /// Makes `version` the active one; false when there is no such version.
    pub async fn activate_plugin_version(&self, name: &str, version: i64) -> Result<bool> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            let done = sqlx::query(
                "UPDATE plugin_settings SET active_version = $1 WHERE name = $2 \
                 AND EXISTS (SELECT 1 FROM plugin_versions WHERE name = $2 AND version = $1)",
            )
            .bind(version)
            .bind(name)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Enables or disables an uploaded plugin; false when there is no such plugin.
    pub async fn set_plugin_enabled(&self, name: &str, enabled: bool) -> Result<bool> {
        on_pool!(&self.writer, |pool, Db, dialect| {
            let done = sqlx::query("UPDATE plugin_settings SET enabled = $1 WHERE name = $2")
                .bind(enabled)
                .bind(name)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Every uploaded plugin, by name, with its versions newest first.
    pub async fn uploaded_plugins(&self) -> Result<Vec<UploadedPlugin>> {
        let rows: Vec<VersionRow> = on_pool!(&self.writer, |pool, Db, dialect| {
            sqlx::query_as(
                "SELECT s.name, v.world, s.active_version, s.enabled, v.version, v.sha256, \
                        CAST(LENGTH(v.component) AS BIGINT) AS size, v.uploaded_by, \
                        v.uploaded_at \
                 FROM plugin_settings s JOIN plugin_versions v ON v.name = s.name \
                 ORDER BY s.name, v.version DESC",
            )
            .fetch_all(pool)
            .await?
        });
        let mut plugins: Vec<UploadedPlugin> = Vec::new();
        for row in rows {
            if plugins.last().is_none_or(|p| p.name != row.name) {
                plugins.push(UploadedPlugin {
                    name: row.name.clone(),
                    // The newest version's world; an upload may not change it.
                    world: row.world,
                    active_version: row.active_version,
                    enabled: row.enabled,
                    versions: Vec::new(),
                });
            }
            let plugin = plugins.last_mut().expect("pushed above");
            plugin.versions.push(PluginVersion {
                version: row.version,
                sha256: row.sha256,
                size: row.size,
                uploaded_by: row.uploaded_by,
                uploaded_at: row.uploaded_at,
            });
        }
        Ok(plugins)
    }
}
