//! OpenAPI schemas of the domain types whose serde is written by hand
//! (a SID, a node name and a requested state travel as strings, a CPU
//! limit as a number): the derive cannot see through a hand-written
//! `Serialize`, so these say what the wire carries. Only the API
//! (feature `node`) needs them.

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::{NodeName, RequestedState, Sid};
use crate::domain::resource::CpuLimit;

/// A string schema with a description and, if given, a pattern.
fn string(description: &str, pattern: Option<&str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(pattern)
}

impl PartialSchema for Sid {
    fn schema() -> RefOr<Schema> {
        string(
            "A resource identifier `type:name`, e.g. `vm:101`, `exec:web`.",
            Some(r"^[a-z]{1,16}:[A-Za-z0-9._:@+-]{1,255}$"),
        )
        .into()
    }
}

impl ToSchema for Sid {}

impl PartialSchema for NodeName {
    fn schema() -> RefOr<Schema> {
        string(
            "A cluster node name (a DNS label).",
            Some(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"),
        )
        .into()
    }
}

impl ToSchema for NodeName {}

impl PartialSchema for RequestedState {
    fn schema() -> RefOr<Schema> {
        string(
            "The requested state of a resource (`enabled` is accepted on input as `started`).",
            None,
        )
        .enum_values(Some(["started", "stopped", "disabled", "ignored"]))
        .into()
    }
}

impl ToSchema for RequestedState {}

impl PartialSchema for CpuLimit {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some("CPU cores (0 = unlimited)."))
            .minimum(Some(0.0))
            .into()
    }
}

impl ToSchema for CpuLimit {}
