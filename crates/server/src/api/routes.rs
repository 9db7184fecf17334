//! Who may call each route: the one table of access. The guard checks a route's scope and the
//! collection in its path before the handler runs (a refused request never has its body
//! read); where the collection is in the query or the body, or a listing is filtered, the
//! handler applies the rule the table names. README's route table is this table (a test
//! holds them equal), and `crates/mnemo/tests/serve.rs` calls every route from it.

use mnemo_engine::{AccessError, Principal, Scope};

/// Which collections a route touches, and how the key's collections are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionRule {
    /// No collection.
    None,
    /// The collection named in the path, `{name}` (checked by the guard).
    Path,
    /// The collection named by the `collection` query parameter, `tasks` by default.
    Query,
    /// The collections named in the body; creating one (indexing into a collection that does
    /// not exist) needs `admin`.
    Body,
    /// A listing: only what the key's collections hold is listed; anything else is not found.
    Listing,
    /// Every collection: refused to a key limited to some.
    All,
    /// Agents' memories, which live in the collection `memories`: a key limited to some
    /// collections must include it.
    Memories,
}

impl CollectionRule {
    /// The words of README's table.
    pub fn describe(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Path => "`{name}`",
            Self::Query => "`collection` (default `tasks`)",
            Self::Body => "`collection`, `passages_collection` (admin to create one)",
            Self::Listing => "only the key's are listed",
            Self::All => "all: refused to a key limited to some",
            Self::Memories => "`memories`",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RouteAccess {
    pub method: &'static str,
    pub path: &'static str,
    /// `None`: open to anyone, without a key.
    pub scope: Option<Scope>,
    pub collections: CollectionRule,
}

const fn route(
    method: &'static str,
    path: &'static str,
    scope: Option<Scope>,
    collections: CollectionRule,
) -> RouteAccess {
    RouteAccess {
        method,
        path,
        scope,
        collections,
    }
}

use CollectionRule as C;
const READ: Option<Scope> = Some(Scope::Read);
const WRITE: Option<Scope> = Some(Scope::Write);
const ADMIN: Option<Scope> = Some(Scope::Admin);

pub const ROUTES: &[RouteAccess] = &[
    route("GET", "/health", None, C::None),
    route("GET", "/ready", None, C::None),
    route("GET", "/openapi.json", None, C::None),
    route("GET", "/docs", None, C::None),
    route("GET", "/api/v1/collections", READ, C::Listing),
    route("GET", "/api/v1/collections/{name}", READ, C::Path),
    route("PUT", "/api/v1/collections/{name}", ADMIN, C::Path),
    route("DELETE", "/api/v1/collections/{name}", ADMIN, C::Path),
    route("PUT", "/api/v1/collections/{name}/points", WRITE, C::Path),
    route(
        "POST",
        "/api/v1/collections/{name}/points/get",
        READ,
        C::Path,
    ),
    route(
        "POST",
        "/api/v1/collections/{name}/points/delete",
        WRITE,
        C::Path,
    ),
    route(
        "POST",
        "/api/v1/collections/{name}/points/scroll",
        READ,
        C::Path,
    ),
    route(
        "POST",
        "/api/v1/collections/{name}/points/count",
        READ,
        C::Path,
    ),
    route("POST", "/api/v1/collections/{name}/search", READ, C::Path),
    route(
        "POST",
        "/api/v1/collections/{name}/search/batch",
        READ,
        C::Path,
    ),
    route("POST", "/api/v1/collections/{name}/similar", READ, C::Path),
    route(
        "POST",
        "/api/v1/collections/{name}/duplicates",
        READ,
        C::Path,
    ),
    route("GET", "/api/v1/collections/{name}/snapshots", READ, C::Path),
    route(
        "POST",
        "/api/v1/collections/{name}/snapshots",
        ADMIN,
        C::Path,
    ),
    route(
        "GET",
        "/api/v1/collections/{name}/snapshots/{snapshot}",
        READ,
        C::Path,
    ),
    route(
        "DELETE",
        "/api/v1/collections/{name}/snapshots/{snapshot}",
        ADMIN,
        C::Path,
    ),
    route(
        "POST",
        "/api/v1/collections/{name}/snapshots/{snapshot}/restore",
        ADMIN,
        C::Path,
    ),
    route("GET", "/api/v1/collections/{name}/migration", READ, C::Path),
    route(
        "POST",
        "/api/v1/collections/{name}/migration",
        ADMIN,
        C::Path,
    ),
    route(
        "POST",
        "/api/v1/collections/{name}/migration/switch",
        ADMIN,
        C::Path,
    ),
    route("GET", "/api/v1/tasks", READ, C::Query),
    route("POST", "/api/v1/index", WRITE, C::Body),
    route("GET", "/api/v1/jobs", READ, C::Listing),
    route("GET", "/api/v1/jobs/{id}", READ, C::Listing),
    route("DELETE", "/api/v1/jobs/{id}", WRITE, C::Listing),
    route("POST", "/api/v1/memories", WRITE, C::Memories),
    route("POST", "/api/v1/memories/search", READ, C::Memories),
    route("POST", "/api/v1/memories/delete", WRITE, C::Memories),
    route("GET", "/api/v1/memories/{id}", READ, C::Memories),
    route("PUT", "/api/v1/memories/{id}", WRITE, C::Memories),
    route("DELETE", "/api/v1/memories/{id}", WRITE, C::Memories),
    route("GET", "/api/v1/memories/{id}/history", READ, C::Memories),
    // Events name every collection's and every user's changes.
    route("GET", "/api/v1/events", ADMIN, C::All),
    route("GET", "/api/v1/events/stream", ADMIN, C::All),
    route("GET", "/api/v1/components", READ, C::None),
    route("GET", "/api/v1/components/{name}", READ, C::None),
    route(
        "POST",
        "/api/v1/components/{name}/actions/{action}",
        ADMIN,
        C::None,
    ),
    route("GET", "/api/v1/config", ADMIN, C::None),
    route("GET", "/api/v1/alerts", READ, C::None),
    route("POST", "/v1/embeddings", READ, C::None),
    route("GET", "/v1/models", READ, C::None),
    route("GET", "/metrics", READ, C::All),
];

/// The table's row for a request's method and route template.
pub fn access_of(method: &str, path: &str) -> Option<&'static RouteAccess> {
    ROUTES
        .iter()
        .find(|route| route.method == method && route.path == path)
}

/// What the guard checks: the scope, and the collection in the path or every collection.
/// `path_collection` is the decoded `{name}` of the request's path, if it has one.
pub fn check(
    access: &RouteAccess,
    principal: &Principal,
    path_collection: Option<&str>,
) -> Result<(), AccessError> {
    let Some(scope) = access.scope else {
        return Ok(());
    };
    match access.collections {
        C::Path => principal.authorize(scope, path_collection),
        C::Memories => principal.authorize(scope, Some(mnemo_engine::memory::MEMORY_COLLECTION)),
        C::All if principal.is_restricted() => Err(AccessError::CollectionsLimited {
            key: principal.name().to_owned(),
        }),
        _ => principal.authorize(scope, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of the OpenAPI description has its row, and every row its operation.
    #[test]
    fn every_described_route_has_a_row() {
        let document: serde_json::Value =
            serde_json::from_str(crate::openapi::document_json()).expect("the document");
        let mut described: Vec<(String, String)> = Vec::new();
        for (path, operations) in document["paths"].as_object().expect("paths") {
            for method in operations.as_object().expect("operations").keys() {
                described.push((method.to_uppercase(), path.clone()));
            }
        }
        described.sort();
        let mut listed: Vec<(String, String)> = ROUTES
            .iter()
            .map(|route| (route.method.to_owned(), route.path.to_owned()))
            .collect();
        listed.sort();
        assert_eq!(described, listed);
    }

    /// README's table, the table of this file written out, row for row.
    #[test]
    fn the_readme_lists_every_route_with_its_access() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md");
        let rows: Vec<String> = readme
            .lines()
            .filter(|line| line.starts_with("| `") && line.matches('|').count() >= 6)
            .filter(|line| {
                let method = line.split('`').nth(1).unwrap_or_default();
                ["GET", "PUT", "POST", "DELETE"].contains(&method)
            })
            .map(|line| line.split('|').take(5).collect::<Vec<_>>().join("|"))
            .collect();
        let expected: Vec<String> = ROUTES
            .iter()
            .map(|route| {
                format!(
                    "| `{}` | `{}` | {} | {} ",
                    route.method,
                    route.path,
                    route.scope.map_or("none", Scope::name),
                    route.collections.describe()
                )
            })
            .collect();
        assert_eq!(rows, expected, "README.md's route table and ROUTES differ");
    }
}
