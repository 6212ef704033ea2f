//! `GET /api/v1/rules`: the node-affinity rules of rules.cfg (where HA
//! groups end up after their migration, spec 3.20).

use axum::extract::State;
use axum::Json;

use super::docs;
use super::error::ApiResult;
use super::ApiState;
use crate::domain::NodeAffinityRule;

/// Lists the rules (linearizable read).
pub async fn list_rules(State(st): State<ApiState>) -> ApiResult<Json<Vec<NodeAffinityRule>>> {
    Ok(Json(docs::rules(&st.store).await?.value))
}
