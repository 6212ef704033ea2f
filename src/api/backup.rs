//! `GET /api/v1/backup`: the cluster's configuration and manager status
//! in one versioned, human-readable JSON document (`ha-manager backup`).
//! `ha-manager restore` feeds the files back through the import route,
//! which only fills an empty cluster and checks everything first.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::docs;
use super::error::{AdminReadErrors, ApiError, ApiResult};
use super::ApiState;

/// The `format` value of every backup.
pub const BACKUP_FORMAT: &str = "ha-manager-backup";

/// The newest backup format version this build writes and reads.
pub const BACKUP_VERSION: u32 = 1;

/// The configuration files, as their text (section-config format, the
/// same as Proxmox's `/etc/pve/ha/*.cfg`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupFiles {
    /// resources.cfg.
    #[serde(rename = "resources.cfg")]
    pub resources: String,
    /// groups.cfg (legacy groups not yet migrated to rules).
    #[serde(rename = "groups.cfg")]
    pub groups: String,
    /// rules.cfg.
    #[serde(rename = "rules.cfg")]
    pub rules: String,
}

/// A backup file.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Always [`BACKUP_FORMAT`].
    pub format: String,
    /// Format version ([`BACKUP_VERSION`] when written by this build).
    pub version: u32,
    /// The ha-manager version that wrote it.
    pub written_by: String,
    /// When, in unix seconds.
    pub created: u64,
    /// The node that answered.
    pub node: String,
    /// The member node names at the time.
    pub members: Vec<String>,
    /// The configuration files.
    pub files: BackupFiles,
    /// The CRS scheduler options in effect (`crs get`; absent in backups
    /// made before they were stored).
    #[serde(default)]
    pub crs: std::collections::BTreeMap<String, String>,
    /// The CRM's manager status at the time (for inspection: `restore`
    /// does not write it back; the CRM places the services anew).
    pub manager_status: serde_json::Value,
}

impl Backup {
    /// Checks the format and version; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.format != BACKUP_FORMAT {
            return Err(format!(
                "field 'format': '{}' is not an ha-manager backup (expected '{BACKUP_FORMAT}')",
                self.format
            ));
        }
        if self.version == 0 || self.version > BACKUP_VERSION {
            return Err(format!(
                "field 'version': backup format version {} is not supported by this ha-manager \
                 ({}), which reads versions 1 to {BACKUP_VERSION}",
                self.version,
                env!("CARGO_PKG_VERSION")
            ));
        }
        Ok(())
    }
}

/// `GET /backup` (linearizable reads).
#[utoipa::path(
    get,
    path = "/backup",
    tag = "config",
    responses(
        (status = 200, description = "The configuration files, the CRS options and the manager status", body = Backup),
        AdminReadErrors
    )
)]
pub async fn backup(State(st): State<ApiState>) -> ApiResult<Json<Backup>> {
    let resources = docs::read_text(&st.store, docs::RESOURCES_DOC).await?;
    let groups = docs::read_text(&st.store, docs::GROUPS_DOC).await?;
    let rules = docs::read_text(&st.store, docs::RULES_DOC).await?;
    let members = docs::nodes(&st.store)
        .await?
        .value
        .nodes
        .into_keys()
        .collect();
    let crs = super::crs::crs_values(&docs::crs(&st.store).await?.value);
    let snap = crate::daemon::snapshot::read(&st.store);
    if let Some(e) = &snap.manager_status_error {
        return Err(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            e.clone(),
        ));
    }
    let manager_status = serde_json::to_value(&snap.manager_status).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("manager status: {e}"),
        )
    })?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Json(Backup {
        format: BACKUP_FORMAT.to_string(),
        version: BACKUP_VERSION,
        written_by: env!("CARGO_PKG_VERSION").to_string(),
        created,
        node: st.node.to_string(),
        members,
        files: BackupFiles {
            resources,
            groups,
            rules,
        },
        crs,
        manager_status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Backup {
        Backup {
            format: BACKUP_FORMAT.into(),
            version: BACKUP_VERSION,
            written_by: "0.1.0".into(),
            created: 1,
            node: "node1".into(),
            members: vec!["node1".into()],
            files: BackupFiles::default(),
            crs: Default::default(),
            manager_status: serde_json::json!({}),
        }
    }

    #[test]
    fn format_and_version_are_checked_and_named() {
        assert_eq!(sample().check(), Ok(()));
        let mut b = sample();
        b.format = "tarball".into();
        assert!(b.check().unwrap_err().contains("field 'format'"));
        let mut b = sample();
        b.version = BACKUP_VERSION + 1;
        let e = b.check().unwrap_err();
        assert!(
            e.contains("field 'version'") && e.contains("version 2"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["extra"] = serde_json::json!(1);
        let e = serde_json::from_value::<Backup>(v).unwrap_err().to_string();
        assert!(e.contains("extra"), "{e}");
    }
}
