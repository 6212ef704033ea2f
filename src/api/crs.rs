//! `/api/v1/crs`: the cluster resource scheduling options (spec 1.7,
//! 3.11): what datacenter.cfg's `crs` key holds in Proxmox, kept in the
//! cluster store as the same property string. The CRM reads them every
//! round, so an edit applies from the next round on.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::docs;
use super::error::{ApiError, ApiResult, ReadErrors, WriteErrors};
use super::extract::ApiJson;
use super::resources::{check_digest, UpdateBody, WriteReply};
use super::ApiState;
use crate::config::datacenter::apply_crs_option;
use crate::domain::CrsOptions;

/// Every `crs` key, in the order they are shown.
pub const CRS_KEYS: [&str; 7] = [
    "ha",
    "ha-rebalance-on-start",
    "ha-auto-rebalance",
    "ha-auto-rebalance-threshold",
    "ha-auto-rebalance-method",
    "ha-auto-rebalance-hold-duration",
    "ha-auto-rebalance-margin",
];

/// Answer of `GET /crs`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CrsView {
    /// Every key with the value in effect (defaults included); threshold
    /// and margin as fractions.
    pub options: BTreeMap<String, String>,
    /// The document version (use as `digest` for an edit; 0 = never set).
    pub digest: u64,
}

/// The value in effect of each key.
pub fn crs_values(crs: &CrsOptions) -> BTreeMap<String, String> {
    let values = [
        crs.mode.as_str().to_string(),
        u8::from(crs.rebalance_on_start).to_string(),
        u8::from(crs.auto_rebalance).to_string(),
        crs.threshold.to_string(),
        crs.method.as_str().to_string(),
        crs.hold_rounds.to_string(),
        crs.margin.to_string(),
    ];
    CRS_KEYS.iter().map(|k| k.to_string()).zip(values).collect()
}

/// Applies an edit: `delete` resets keys to their defaults, then
/// `options` are set. The first bad key or value is refused naming it.
pub fn edit_crs(
    crs: &mut CrsOptions,
    options: &BTreeMap<String, String>,
    delete: &[String],
) -> ApiResult<()> {
    let defaults = crs_values(&CrsOptions::default());
    for key in delete {
        let default = defaults.get(key).ok_or_else(|| {
            ApiError::field(
                "delete",
                format!("field 'delete': unknown crs option '{key}'"),
            )
        })?;
        apply_crs_option(crs, key, default).map_err(|e| ApiError::field(key, e.to_string()))?;
    }
    for (key, value) in options {
        apply_crs_option(crs, key, value).map_err(|e| ApiError::field(key, e.to_string()))?;
    }
    Ok(())
}

/// `GET /crs` (linearizable read).
#[utoipa::path(
    get,
    path = "/crs",
    tag = "crs",
    responses(
        (status = 200, description = "Every scheduling option in effect and the document version", body = CrsView),
        ReadErrors
    )
)]
pub async fn get_crs(State(st): State<ApiState>) -> ApiResult<Json<CrsView>> {
    let crs = docs::crs(&st.store).await?;
    Ok(Json(CrsView {
        options: crs_values(&crs.value),
        digest: crs.version,
    }))
}

/// `PUT /crs`: changes the given keys; nothing is written if one is bad.
#[utoipa::path(
    put,
    path = "/crs",
    tag = "crs",
    request_body = UpdateBody,
    responses(
        (status = 200, description = "Changed; the new document version", body = WriteReply),
        WriteErrors
    )
)]
pub async fn set_crs(
    State(st): State<ApiState>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> ApiResult<Json<WriteReply>> {
    let mut crs = docs::crs(&st.store).await?;
    let version = check_digest(body.digest, crs.version)?;
    edit_crs(&mut crs.value, &body.options, &body.delete)?;
    let digest = docs::put_crs(&st.store, &crs.value, version).await?;
    Ok(Json(WriteReply { digest }))
}

/// Answer of `GET /crs/usage`: what the scheduler works with, from this
/// node's replica.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CrsUsageView {
    /// The configured scheduler mode.
    pub mode: String,
    /// The imbalance automatic rebalancing compares with its threshold
    /// (coefficient of variation of the node loads, spec 3.11.6); absent
    /// in `basic` and while some online node has no usage report.
    pub imbalance: Option<f64>,
    /// Each node's last usage report.
    pub nodes: BTreeMap<String, crate::crm::NodeUsageReport>,
}

/// `GET /crs/usage` (local replica).
#[utoipa::path(
    get,
    path = "/crs/usage",
    tag = "crs",
    responses(
        (status = 200, description = "The scheduler mode, the imbalance and each node's last usage report", body = CrsUsageView),
        ReadErrors
    )
)]
pub async fn get_usage(State(st): State<ApiState>) -> ApiResult<Json<CrsUsageView>> {
    let snap = crate::daemon::snapshot::read(&st.store);
    let scheduling = snap.scheduling();
    Ok(Json(CrsUsageView {
        mode: snap.crs.mode.as_str().to_string(),
        imbalance: crate::crm::usage_report::cluster_imbalance(&snap.manager_status, &scheduling),
        nodes: snap
            .node_usage
            .into_iter()
            .map(|(n, r)| (n.to_string(), r))
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CrsMode;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn edit_sets_and_resets_keys() {
        let mut crs = CrsOptions::default();
        edit_crs(
            &mut crs,
            &options(&[("ha", "static"), ("ha-rebalance-on-start", "1")]),
            &[],
        )
        .unwrap();
        assert_eq!(crs.mode, CrsMode::Static);
        assert!(crs.rebalance_on_start);
        edit_crs(&mut crs, &BTreeMap::new(), &["ha".to_string()]).unwrap();
        assert_eq!(crs.mode, CrsMode::Basic);
        assert!(crs.rebalance_on_start);
        assert_eq!(crs_values(&crs)["ha-rebalance-on-start"], "1");
        assert_eq!(crs_values(&CrsOptions::default()).len(), CRS_KEYS.len());
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let mut crs = CrsOptions::default();
        let err = edit_crs(&mut crs, &options(&[("ha", "fancy")]), &[]).unwrap_err();
        assert_eq!(err.body.field.as_deref(), Some("ha"));
        assert!(err.body.error.contains("fancy"), "{}", err.body.error);
        let err = edit_crs(&mut crs, &options(&[("bogus", "1")]), &[]).unwrap_err();
        assert_eq!(err.body.field.as_deref(), Some("bogus"));
        let err = edit_crs(&mut crs, &BTreeMap::new(), &["bogus".to_string()]).unwrap_err();
        assert_eq!(err.body.field.as_deref(), Some("delete"));
        let err = edit_crs(
            &mut crs,
            &options(&[("ha-auto-rebalance-threshold", "-1")]),
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err.body.field.as_deref(),
            Some("ha-auto-rebalance-threshold")
        );
    }
}
