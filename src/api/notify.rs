//! `/api/v1/notify/...`: the notification targets (the `notifications`
//! document, `crate::notify::config`) and `notify test`.
//!
//! * `GET /notify/targets` (read-only tokens too): every target without
//!   its secret or CA text.
//! * `POST /notify/targets` (admin): adds a target; it gets the events
//!   recorded after this moment. Every refusal names the field and
//!   changes nothing.
//! * `DELETE /notify/targets/{name}` (admin): removes it and its cursor.
//! * `POST /notify/test` (admin): sends a test event to every target (or
//!   one) through the real delivery code, from the node that answers, and
//!   reports per target what happened. Nothing is written.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::docs;
use super::error::{ApiError, ApiResult, ReadErrors, WriteErrors};
use super::extract::{ApiJson, ApiPath};
use super::tokens::Caller;
use super::ApiState;
use crate::notify::config::{
    check_name, cursor_doc, parse_doc, NewTarget, NotifyDoc, Sink, TargetView, FORMAT, MAX_TARGETS,
    NOTIFY_DOC,
};
use crate::notify::plan::Attempt;

fn corrupt(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("stored document '{NOTIFY_DOC}' is invalid: {e}"),
    )
}

async fn read_doc(st: &ApiState) -> ApiResult<(NotifyDoc, u64)> {
    let (text, version) = docs::read_raw_text(&st.store, NOTIFY_DOC).await?;
    Ok((parse_doc(&text).map_err(corrupt)?, version))
}

async fn write_doc(st: &ApiState, doc: &NotifyDoc, version: u64) -> ApiResult<()> {
    let text = serde_json::to_string(doc).map_err(corrupt)?;
    let written = docs::put_raw_text(&st.store, NOTIFY_DOC, text, version).await?;
    // The answer arrives once this node holds the change too.
    st.store.read_at_least(written, |_| ()).await?;
    Ok(())
}

/// `GET /notify/targets`: never a secret.
#[utoipa::path(
    get,
    path = "/notify/targets",
    tag = "notify",
    operation_id = "notify_targets_list",
    responses(
        (status = 200, description = "Every notification target, without its secret or CA text", body = Vec<TargetView>),
        ReadErrors
    )
)]
pub async fn list(State(st): State<ApiState>) -> ApiResult<Json<Vec<TargetView>>> {
    let (doc, _) = read_doc(&st).await?;
    Ok(Json(
        doc.targets
            .iter()
            .map(|(name, t)| TargetView::of(name, t))
            .collect(),
    ))
}

/// `POST /notify/targets`: adds a target (admin); it gets the events
/// recorded from now on.
#[utoipa::path(
    post,
    path = "/notify/targets",
    tag = "notify",
    operation_id = "notify_targets_add",
    request_body = NewTarget,
    responses(
        (status = 201, description = "The target as listed", body = TargetView),
        WriteErrors
    )
)]
pub async fn add(
    State(st): State<ApiState>,
    ApiJson(req): ApiJson<NewTarget>,
) -> ApiResult<(StatusCode, Json<TargetView>)> {
    // The linearizable read of the document below comes first, so the
    // history this node holds is at least as new as at the request.
    let (mut doc, version) = read_doc(&st).await?;
    let start_after = crate::daemon::notify_task::last_seq(&st.store);
    let (name, target) = req
        .validate(start_after)
        .map_err(|e| ApiError::field(e.field, e.message))?;
    if let Sink::Webhook { url, ca_pem, .. } = &target.sink {
        if let Err(e) = reqwest::Url::parse(url) {
            return Err(ApiError::field(
                "webhook",
                format!("field 'webhook': not a URL: {e}"),
            ));
        }
        if let Some(pem) = ca_pem {
            crate::daemon::notify_send::webhook_client(
                Some(pem),
                std::time::Duration::from_secs(1),
            )
            .map_err(|e| ApiError::field("ca_pem", format!("field 'ca_pem': {e}")))?;
        }
    }
    if doc.targets.contains_key(&name) {
        return Err(ApiError::field(
            "name",
            format!("field 'name': target '{name}' exists already (remove it first)"),
        )
        .with_status(StatusCode::CONFLICT));
    }
    if doc.targets.len() >= MAX_TARGETS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{MAX_TARGETS} targets exist already: remove one first"),
        ));
    }
    let view = TargetView::of(&name, &target);
    doc.format = FORMAT;
    doc.targets.insert(name, target);
    write_doc(&st, &doc, version).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Answer of `DELETE /notify/targets/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TargetRemoved {
    /// The target removed.
    pub removed: String,
}

/// `DELETE /notify/targets/{name}`: removes a target and its cursor.
#[utoipa::path(
    delete,
    path = "/notify/targets/{name}",
    tag = "notify",
    operation_id = "notify_targets_remove",
    params(("name" = String, Path, description = "The target")),
    responses(
        (status = 200, description = "The target removed", body = TargetRemoved),
        WriteErrors
    )
)]
pub async fn remove(
    State(st): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<TargetRemoved>> {
    check_name(&name).map_err(|e| ApiError::field("name", e))?;
    let (mut doc, version) = read_doc(&st).await?;
    if doc.targets.remove(&name).is_none() {
        return Err(
            ApiError::field("name", format!("field 'name': no target '{name}'"))
                .with_status(StatusCode::NOT_FOUND),
        );
    }
    write_doc(&st, &doc, version).await?;
    // A target added again under this name starts at its own start, so a
    // cursor left behind (this delete failing) does no harm.
    let key = raft::DocKey::Config(cursor_doc(&name));
    if st.store.read_local(|s| s.doc(&key).is_some()).value {
        if let Err(e) = st.store.delete_doc(key, None).await {
            tracing::warn!(target: "notify", target_name = %name, "cursor not removed: {e}");
        }
    }
    Ok(Json(TargetRemoved { removed: name }))
}

/// Body of `POST /notify/test`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// Only this target (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// One target's result of `POST /notify/test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestResult {
    /// Target name.
    pub target: String,
    /// `delivered`, `failed` (would be retried) or `rejected`.
    pub outcome: String,
    /// What went wrong, if anything.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// `POST /notify/test`: a test event to every target (or one), through
/// the real delivery code; nothing is written.
#[utoipa::path(
    post,
    path = "/notify/test",
    tag = "notify",
    operation_id = "notify_test",
    request_body = TestRequest,
    responses(
        (status = 200, description = "What happened per target", body = Vec<TestResult>),
        WriteErrors
    )
)]
pub async fn test(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<TestRequest>,
) -> ApiResult<Json<Vec<TestResult>>> {
    let (doc, _) = read_doc(&st).await?;
    let chosen: Vec<(String, crate::notify::config::Target)> = match &req.target {
        Some(name) => {
            check_name(name)
                .map_err(|e| ApiError::field("target", e.replace("'name'", "'target'")))?;
            let t = doc.targets.get(name).ok_or_else(|| {
                ApiError::field("target", format!("field 'target': no target '{name}'"))
                    .with_status(StatusCode::NOT_FOUND)
            })?;
            vec![(name.clone(), t.clone())]
        }
        None => doc.targets.into_iter().collect(),
    };
    let ev = crate::notify::event::test_event(
        crate::daemon::crm_task::unix_ms(),
        st.node.as_str(),
        &caller.id,
    );
    let me = st.node.to_string();
    let mut sends = tokio::task::JoinSet::new();
    for (i, (name, target)) in chosen.into_iter().enumerate() {
        let ev = ev.clone();
        let me = me.clone();
        sends.spawn(async move {
            let attempt = crate::daemon::notify_send::deliver(&name, &target, &ev, &me).await;
            (i, name, attempt)
        });
    }
    let mut results = Vec::new();
    while let Some(done) = sends.join_next().await {
        let Ok((i, name, attempt)) = done else {
            continue;
        };
        let (outcome, detail) = match attempt {
            Attempt::Delivered => ("delivered", String::new()),
            Attempt::Retry(d) => ("failed", d),
            Attempt::Rejected(d) => ("rejected", d),
        };
        tracing::info!(target: "notify", target_name = %name, outcome, %detail, "test notification");
        results.push((
            i,
            TestResult {
                target: name,
                outcome: outcome.to_string(),
                detail,
            },
        ));
    }
    results.sort_by_key(|(i, _)| *i);
    Ok(Json(results.into_iter().map(|(_, r)| r).collect()))
}
