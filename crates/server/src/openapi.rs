//! The OpenAPI 3.1 description of the API, generated from the handlers' annotations and the
//! request and response types themselves, so that it cannot drift from the code.

use std::sync::OnceLock;

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, SecurityRequirement};
use utoipa::{Modify, OpenApi};

use crate::api::{
    collections, components, embeddings, events, jobs, memories, migration, points, search,
    snapshots, system,
};
use crate::error::ErrorResponse;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mnemo",
        description = "Local-first semantic memory: Markdown plans as tasks and passages, searched by meaning and by keyword, over Qdrant's data model. Every error is `{\"error\": {\"code\", \"message\", \"details\"}}`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    paths(
        system::health,
        system::ready,
        system::metrics,
        system::openapi,
        system::docs,
        collections::list,
        collections::info,
        collections::create,
        collections::delete,
        points::upsert,
        points::get,
        points::delete,
        points::scroll,
        points::count,
        search::search,
        search::batch,
        search::similar,
        search::duplicates,
        search::tasks,
        jobs::start,
        jobs::list,
        jobs::status,
        jobs::cancel,
        memories::add,
        memories::search,
        memories::get,
        memories::update,
        memories::delete,
        memories::delete_many,
        memories::history,
        events::list,
        events::stream,
        components::list,
        components::get,
        components::act,
        components::config,
        components::alerts,
        embeddings::create,
        embeddings::models,
        snapshots::list,
        snapshots::create,
        snapshots::restore,
        snapshots::delete,
        snapshots::download,
        migration::start,
        migration::status,
        migration::switch,
    ),
    components(schemas(ErrorResponse)),
    modifiers(&KeysAndErrors),
    tags(
        (name = "collections", description = "Collections of points, as in Qdrant"),
        (name = "points", description = "Points: ids, vectors, JSON payloads"),
        (name = "search", description = "Search by vector or text, similar items, task listing"),
        (name = "indexing", description = "Index Markdown on the server as background jobs"),
        (name = "memories", description = "Agents' memories: scoped, deduplicated, with history and expiry"),
        (name = "events", description = "The durable event log: paged, and followed as server-sent events"),
        (name = "embeddings", description = "OpenAI-compatible embeddings"),
        (name = "snapshots", description = "Consistent, checksummed snapshots of a collection"),
        (name = "operations", description = "The service's components and its configuration"),
        (name = "server", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

/// Keys as `Authorization: Bearer KEY` or `api-key: KEY` on every route that does not opt
/// out, and the error body as every operation's `default` response.
struct KeysAndErrors;

impl Modify for KeysAndErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("api-key"))),
        );
        let keys = vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("api_key", Vec::<String>::new()),
        ];
        let error = ResponseBuilder::new()
            .description("An error: see `code` (the README lists them all)")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorResponse")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations: [&mut Option<Operation>; 4] = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                // `security(())` on a handler is an explicit "no key needed".
                if operation.security.is_none() {
                    operation.security = Some(keys.clone());
                }
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response
                        && response.description.is_empty()
                    {
                        response.description = success_description(status).into();
                    }
                }
                operation
                    .responses
                    .responses
                    .insert("default".into(), error.clone().into());
            }
        }
    }
}

/// OpenAPI requires every response to say something; the schemas say the rest.
fn success_description(status: &str) -> &'static str {
    match status {
        "201" => "Created",
        "202" => "Accepted: the job runs in the background",
        _ => "OK",
    }
}

/// The document as JSON, built once.
pub fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|err| format!("{{\"error\": \"cannot describe the API: {err}\"}}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_with_keys_and_errors() {
        let document: serde_json::Value =
            serde_json::from_str(document_json()).expect("the document is JSON");
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().expect("paths");
        for path in [
            "/api/v1/collections/{name}/points/scroll",
            "/api/v1/index",
            "/api/v1/jobs/{id}",
            "/v1/embeddings",
            "/v1/models",
            "/metrics",
        ] {
            assert!(paths.contains_key(path), "{path} is not described");
        }
        let search = &paths["/api/v1/collections/{name}/search"]["post"];
        assert_eq!(search["security"][0]["bearer"], serde_json::json!([]));
        assert!(search["responses"]["default"].is_object());
        assert_eq!(paths["/health"]["get"]["security"], serde_json::json!([{}]));
    }
}
