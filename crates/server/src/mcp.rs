//! MCP, the protocol agents call tools with: agents' memories and the plan index as tools,
//! over stdio (`mnemo mcp`) and Streamable HTTP (`/mcp` of `mnemo serve`). Like the REST
//! routes, each tool only parses its arguments, checks the caller's key and calls the engine;
//! its errors carry the REST API's codes.
//!
//! Over HTTP the guard of the REST API identifies the caller (the same keys, rate limits and
//! body limit) before rmcp sees the request; each tool then checks the scope and collection it
//! needs, and `tools/list` shows a key only the tools it may call. Over stdio the caller is
//! the local user, who may act for a configured user and agent.

use std::sync::Arc;

use axum::http::request::Parts;
use mnemo_engine::memory::{AddStatus, MEMORY_COLLECTION, MemoryQuery, NewMemory};
use mnemo_engine::{Engine, Principal, Scope, SearchMode, SearchOptions, parse_filter};
use mnemo_store::{Filter, PayloadSelection, VectorSelection};
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, InitializeResult,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::api::memories::{HistoryView, MemoryView, scope, time_field};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// The route of the Streamable HTTP endpoint.
pub const MCP_PATH: &str = "/mcp";

/// The tools, as agents' configs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToolName {
    AddMemory,
    SearchMemories,
    GetMemory,
    UpdateMemory,
    DeleteMemory,
    DeleteMemories,
    MemoryHistory,
    SearchTasks,
    GetTask,
    SimilarTasks,
    DuplicateTasks,
    ListCollections,
}

/// Which collection a tool touches: the memories, or the one its `collection` argument names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Touches {
    Memories,
    NamedCollection,
    Listing,
}

struct ToolSpec {
    name: ToolName,
    id: &'static str,
    description: &'static str,
    needs: Scope,
    touches: Touches,
    destructive: bool,
    schema: fn() -> Arc<JsonObject>,
}

const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: ToolName::AddMemory,
        id: "add_memory",
        description: "Remember a fact or note for a user, an agent or a run (at least one of \
            user_id, agent_id, run_id). The same text in the same scope is stored once: its id \
            comes back with status `unchanged`. Memories close in meaning come back as \
            `similar`; the new one is stored all the same, so decide whether to update or \
            delete one of them.",
        needs: Scope::Write,
        touches: Touches::Memories,
        destructive: false,
        schema: schema_for_type::<AddMemoryArgs>,
    },
    ToolSpec {
        name: ToolName::SearchMemories,
        id: "search_memories",
        description: "Find the memories a scope may see, by meaning (or `hybrid`: meaning and \
            keywords), best first with scores. A memory with only user_id is seen by all of \
            that user's agents; one with agent_id by that agent; one with run_id by that run. \
            `wider: true` also returns the narrower memories (a user's search then sees its \
            agents' and runs'). Expired memories are never returned.",
        needs: Scope::Read,
        touches: Touches::Memories,
        destructive: false,
        schema: schema_for_type::<SearchMemoriesArgs>,
    },
    ToolSpec {
        name: ToolName::GetMemory,
        id: "get_memory",
        description: "One memory by its id: text, metadata, scope, times, author.",
        needs: Scope::Read,
        touches: Touches::Memories,
        destructive: false,
        schema: schema_for_type::<IdArgs>,
    },
    ToolSpec {
        name: ToolName::UpdateMemory,
        id: "update_memory",
        description: "Replace a memory's text or metadata (or both). It is embedded again; the \
            old version stays in its history.",
        needs: Scope::Write,
        touches: Touches::Memories,
        destructive: false,
        schema: schema_for_type::<UpdateMemoryArgs>,
    },
    ToolSpec {
        name: ToolName::DeleteMemory,
        id: "delete_memory",
        description: "Forget one memory by its id. It is gone from searches at once; its \
            history stays.",
        needs: Scope::Write,
        touches: Touches::Memories,
        destructive: true,
        schema: schema_for_type::<IdArgs>,
    },
    ToolSpec {
        name: ToolName::DeleteMemories,
        id: "delete_memories",
        description: "Forget every memory of a scope (\"everything about user X\") or whose \
            metadata matches a filter; the fields given must all match. Needs `confirm: true`. \
            Returns how many were deleted.",
        needs: Scope::Write,
        touches: Touches::Memories,
        destructive: true,
        schema: schema_for_type::<DeleteMemoriesArgs>,
    },
    ToolSpec {
        name: ToolName::MemoryHistory,
        id: "memory_history",
        description: "Every change of one memory, oldest first: added, updated, deleted or \
            expired, with the text and metadata before and after, who and when. Kept after \
            the memory is deleted.",
        needs: Scope::Read,
        touches: Touches::Memories,
        destructive: false,
        schema: schema_for_type::<IdArgs>,
    },
    ToolSpec {
        name: ToolName::SearchTasks,
        id: "search_tasks",
        description: "Search the indexed plans' tasks by meaning (`dense`), keywords \
            (`keyword`) or both (`hybrid`, best for task numbers and file names). Each result \
            has its score, task id, number, title, status, priority, file and line.",
        needs: Scope::Read,
        touches: Touches::NamedCollection,
        destructive: false,
        schema: schema_for_type::<SearchTasksArgs>,
    },
    ToolSpec {
        name: ToolName::GetTask,
        id: "get_task",
        description: "One indexed task (or passage) by its id, as search_tasks returns it.",
        needs: Scope::Read,
        touches: Touches::NamedCollection,
        destructive: false,
        schema: schema_for_type::<TaskIdArgs>,
    },
    ToolSpec {
        name: ToolName::SimilarTasks,
        id: "similar_tasks",
        description: "The tasks closest in meaning to one task (itself left out), best first.",
        needs: Scope::Read,
        touches: Touches::NamedCollection,
        destructive: false,
        schema: schema_for_type::<SimilarTasksArgs>,
    },
    ToolSpec {
        name: ToolName::DuplicateTasks,
        id: "duplicate_tasks",
        description: "Groups of near-duplicate tasks across the plans (cosine at least \
            `threshold`), largest groups first: candidates to merge.",
        needs: Scope::Read,
        touches: Touches::NamedCollection,
        destructive: false,
        schema: schema_for_type::<DuplicateTasksArgs>,
    },
    ToolSpec {
        name: ToolName::ListCollections,
        id: "list_collections",
        description: "The collections this key may use, with their point counts.",
        needs: Scope::Read,
        touches: Touches::Listing,
        destructive: false,
        schema: schema_for_type::<NoArgs>,
    },
];

/// A filter: the `--filter` language as a string (`status:todo AND priority:P0`), or a
/// Qdrant filter object (`{"must": [...]}`).
fn filter_description() -> &'static str {
    "A filter: the filter language as a string (`status = todo and priority = P0`), or a \
     Qdrant filter object such as {\"must\": [{\"key\": \"status\", \"match\": {\"value\": \"todo\"}}]}"
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AddMemoryArgs {
    /// The fact or note to remember, in a sentence or a few (at most 64 KiB).
    text: String,
    /// A JSON object kept with the memory, filterable in searches (`{"topic": "billing"}`).
    metadata: Option<Map<String, Value>>,
    /// The user the memory is about or for.
    user_id: Option<String>,
    /// The agent that keeps it; with user_id, only that agent sees it.
    agent_id: Option<String>,
    /// The run (session, conversation) it belongs to; only that run sees it.
    run_id: Option<String>,
    /// RFC 3339 time after which it is forgotten (`2027-01-31T00:00:00Z`).
    expires_at: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchMemoriesArgs {
    /// What to look for, in words.
    query: String,
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    /// Also the memories of narrower scopes than the one given.
    #[serde(default)]
    wider: bool,
    /// On the memories' metadata.
    #[schemars(description = filter_description())]
    filter: Option<Value>,
    /// How many memories at most (1 to 10000; default 10).
    limit: Option<usize>,
    /// `dense` (meaning, the default), `hybrid` or `keyword`.
    mode: Option<String>,
    /// RFC 3339: only memories created at or after this time.
    created_after: Option<String>,
    /// RFC 3339: only memories created before this time.
    created_before: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct IdArgs {
    /// The memory's id (a UUID, as add_memory returned it).
    id: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateMemoryArgs {
    /// The memory's id.
    id: String,
    /// The new text; left out, the text stays.
    text: Option<String>,
    /// The new metadata, replacing the old; left out, it stays.
    metadata: Option<Map<String, Value>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DeleteMemoriesArgs {
    user_id: Option<String>,
    agent_id: Option<String>,
    run_id: Option<String>,
    /// On the memories' metadata.
    #[schemars(description = filter_description())]
    filter: Option<Value>,
    /// Must be true: this forgets many memories at once.
    #[serde(default)]
    confirm: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchTasksArgs {
    /// What to look for: words, a task number (`2.1.3`), a file name.
    query: String,
    /// `dense` (meaning, the default), `hybrid` (meaning and keywords) or `keyword`.
    mode: Option<String>,
    /// On the tasks' fields: status, priority, file, section, mvp, owner, tags.
    #[schemars(description = filter_description())]
    filter: Option<Value>,
    /// How many tasks at most (1 to 10000; default 10).
    limit: Option<usize>,
    /// The collection `mnemo index` wrote (default `tasks`).
    collection: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TaskIdArgs {
    /// The task's id (as search_tasks returns it) or its point id.
    id: String,
    /// The collection (default `tasks`).
    collection: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SimilarTasksArgs {
    /// The task's id (as search_tasks returns it) or its point id.
    id: String,
    /// How many tasks at most (default 10).
    limit: Option<usize>,
    #[schemars(description = filter_description())]
    filter: Option<Value>,
    /// The collection (default `tasks`).
    collection: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DuplicateTasksArgs {
    /// The least cosine similarity of two duplicates, above 0 and at most 1 (default 0.9).
    threshold: Option<f32>,
    /// How many groups at most (default 10).
    limit: Option<usize>,
    #[schemars(description = filter_description())]
    filter: Option<Value>,
    /// The collection (default `tasks`).
    collection: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// The tools of one MCP connection (stdio) or request (HTTP).
#[derive(Clone)]
pub struct McpTools {
    state: Arc<AppState>,
    /// Who calls over stdio; `None` over HTTP, where the guard says who it is.
    local: Option<Principal>,
}

impl McpTools {
    /// The tools for the local user of `mnemo mcp`.
    pub fn local(state: Arc<AppState>, caller: Principal) -> Self {
        Self {
            state,
            local: Some(caller),
        }
    }

    fn caller(&self, context: &RequestContext<RoleServer>) -> ApiResult<Principal> {
        context
            .extensions
            .get::<Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>().cloned())
            .or_else(|| self.local.clone())
            .ok_or_else(|| mnemo_engine::AccessError::KeyMissing.into())
    }

    fn visible_to(spec: &ToolSpec, caller: &Principal) -> bool {
        let collection = (spec.touches == Touches::Memories).then_some(MEMORY_COLLECTION);
        caller.authorize(spec.needs, collection).is_ok()
    }

    async fn call(&self, spec: &ToolSpec, caller: Principal, arguments: Value) -> ApiResult<Value> {
        // A tool of a named collection checks it once its arguments are read.
        match spec.touches {
            Touches::Memories => caller.authorize(spec.needs, Some(MEMORY_COLLECTION))?,
            Touches::NamedCollection | Touches::Listing => caller.authorize(spec.needs, None)?,
        }
        let collection = |named: Option<String>| -> ApiResult<String> {
            let name = named.unwrap_or_else(|| mnemo_engine::TASKS_COLLECTION.to_owned());
            caller.authorize(spec.needs, Some(&name))?;
            Ok(name)
        };
        let actor = caller.name().to_owned();
        match spec.name {
            ToolName::AddMemory => {
                let args: AddMemoryArgs = parse(spec, arguments)?;
                let new = NewMemory {
                    expires_at: time_field("expires_at", args.expires_at.as_deref())?,
                    scope: caller.memory_scope(scope(args.user_id, args.agent_id, args.run_id))?,
                    text: args.text,
                    metadata: args.metadata.unwrap_or_default(),
                    actor,
                    similar_threshold: None,
                };
                self.run(move |engine| {
                    let added = engine.add_memory(&new)?;
                    Ok(json!({
                        "id": added.id,
                        "status": match added.status {
                            AddStatus::Added => "added",
                            AddStatus::Unchanged => "unchanged",
                        },
                        "similar": added.similar,
                    }))
                })
                .await
            }
            ToolName::SearchMemories => {
                let args: SearchMemoriesArgs = parse(spec, arguments)?;
                let query = MemoryQuery {
                    scope: caller.memory_scope(scope(args.user_id, args.agent_id, args.run_id))?,
                    text: args.query,
                    wider: args.wider,
                    filter: filter_of(args.filter)?,
                    limit: args.limit.unwrap_or(10),
                    score_threshold: None,
                    mode: mode_of(args.mode.as_deref())?,
                    created_after: time_field("created_after", args.created_after.as_deref())?,
                    created_before: time_field("created_before", args.created_before.as_deref())?,
                };
                self.run(move |engine| {
                    let found = engine.search_memories(&query)?;
                    let result: Vec<Value> = found
                        .into_iter()
                        .map(|found| {
                            let mut view = to_object(MemoryView::from(found.memory));
                            view.insert("score".into(), json!(found.score));
                            Value::Object(view)
                        })
                        .collect();
                    Ok(json!({ "result": result }))
                })
                .await
            }
            ToolName::GetMemory => {
                let args: IdArgs = parse(spec, arguments)?;
                self.run(move |engine| {
                    let memory = engine.memory_for(&caller, &args.id)?;
                    Ok(Value::Object(to_object(MemoryView::from(memory))))
                })
                .await
            }
            ToolName::UpdateMemory => {
                let args: UpdateMemoryArgs = parse(spec, arguments)?;
                if args.text.is_none() && args.metadata.is_none() {
                    return Err(ApiError::new(
                        ErrorCode::InvalidRequest,
                        "update_memory: give `text`, `metadata` or both",
                    ));
                }
                self.run(move |engine| {
                    engine.memory_for(&caller, &args.id)?;
                    let memory = engine.update_memory(
                        &args.id,
                        args.text.as_deref(),
                        args.metadata,
                        &actor,
                    )?;
                    Ok(Value::Object(to_object(MemoryView::from(memory))))
                })
                .await
            }
            ToolName::DeleteMemory => {
                let args: IdArgs = parse(spec, arguments)?;
                self.run(move |engine| {
                    engine.memory_for(&caller, &args.id)?;
                    let memory = engine.delete_memory(&args.id, &actor)?;
                    Ok(json!({ "deleted": MemoryView::from(memory) }))
                })
                .await
            }
            ToolName::DeleteMemories => {
                let args: DeleteMemoriesArgs = parse(spec, arguments)?;
                if !args.confirm {
                    return Err(ApiError::new(
                        ErrorCode::InvalidRequest,
                        "delete_memories forgets many memories at once: call it again with \
                         `confirm: true` if that is meant",
                    ));
                }
                let scope = caller.memory_scope(scope(args.user_id, args.agent_id, args.run_id))?;
                let filter = filter_of(args.filter)?;
                self.run(move |engine| {
                    let deleted = engine.delete_memories(&scope, filter.as_ref(), &actor)?;
                    Ok(json!({ "deleted": deleted }))
                })
                .await
            }
            ToolName::MemoryHistory => {
                let args: IdArgs = parse(spec, arguments)?;
                self.run(move |engine| {
                    let history = engine.memory_history_for(&caller, &args.id)?;
                    let history: Vec<HistoryView> =
                        history.into_iter().map(HistoryView::from).collect();
                    Ok(json!({ "history": history }))
                })
                .await
            }
            ToolName::SearchTasks => {
                let args: SearchTasksArgs = parse(spec, arguments)?;
                let collection_argument = collection(args.collection)?;
                let limit = args.limit.unwrap_or(10);
                mnemo_engine::check_limit(limit)?;
                let options = SearchOptions {
                    collection: collection_argument,
                    limit,
                    filter: filter_of(args.filter)?.unwrap_or_default(),
                    mode: mode_of(args.mode.as_deref())?,
                    score_threshold: None,
                };
                self.run(move |engine| {
                    let hits = engine.search(&args.query, &options)?;
                    Ok(json!({ "result": hits }))
                })
                .await
            }
            ToolName::GetTask => {
                let args: TaskIdArgs = parse(spec, arguments)?;
                let collection_argument = collection(args.collection)?;
                self.run(move |engine| {
                    let point = engine.find_point(&collection_argument, &args.id)?;
                    let record = engine
                        .store()
                        .get(
                            &collection_argument,
                            &[point],
                            PayloadSelection::All,
                            VectorSelection::None,
                        )?
                        .into_iter()
                        .next()
                        .ok_or_else(|| mnemo_engine::EngineError::UnknownItem {
                            collection: collection_argument.clone(),
                            id: args.id.clone(),
                        })?;
                    Ok(json!({ "id": record.id, "payload": record.payload }))
                })
                .await
            }
            ToolName::SimilarTasks => {
                let args: SimilarTasksArgs = parse(spec, arguments)?;
                let collection_argument = collection(args.collection)?;
                let limit = args.limit.unwrap_or(10);
                mnemo_engine::check_limit(limit)?;
                let options = SearchOptions {
                    collection: collection_argument,
                    limit,
                    filter: filter_of(args.filter)?.unwrap_or_default(),
                    mode: SearchMode::Dense,
                    score_threshold: None,
                };
                self.run(move |engine| {
                    let hits = engine.similar(&args.id, &options)?;
                    Ok(json!({ "result": hits }))
                })
                .await
            }
            ToolName::DuplicateTasks => {
                let args: DuplicateTasksArgs = parse(spec, arguments)?;
                let collection_argument = collection(args.collection)?;
                let threshold = args.threshold.unwrap_or(0.9);
                mnemo_engine::check_duplicate_threshold(threshold)?;
                let limit = args.limit.unwrap_or(10);
                mnemo_engine::check_limit(limit)?;
                let filter = filter_of(args.filter)?.unwrap_or_default();
                self.run(move |engine| {
                    let mut clusters =
                        engine.duplicates(&collection_argument, threshold, 10, &filter)?;
                    let total = clusters.len();
                    clusters.truncate(limit);
                    Ok(json!({ "total": total, "clusters": clusters }))
                })
                .await
            }
            ToolName::ListCollections => {
                let _: NoArgs = parse(spec, arguments)?;
                self.run(move |engine| {
                    let mut collections = Vec::new();
                    for name in engine.store().list_collections()? {
                        if !caller.may_see(&name) {
                            continue;
                        }
                        let points = engine.store().count(&name, None)?;
                        collections.push(json!({ "name": name, "points": points }));
                    }
                    Ok(json!({ "collections": collections }))
                })
                .await
            }
        }
    }

    async fn run(
        &self,
        work: impl FnOnce(&Engine) -> ApiResult<Value> + Send + 'static,
    ) -> ApiResult<Value> {
        self.state.run(work).await
    }
}

impl ServerHandler for McpTools {
    fn get_info(&self) -> InitializeResult {
        let mut info = InitializeResult::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("mnemo", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "mnemo keeps agents' memories (add_memory, search_memories, update_memory, \
             delete_memory, memory_history) scoped by user_id, agent_id and run_id, and \
             searches the team's indexed plans (search_tasks, get_task, similar_tasks, \
             duplicate_tasks). Search memories before adding one; update rather than add when \
             a fact changed."
                .to_owned(),
        );
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self
            .caller(&context)
            .map_err(|err| ErrorData::invalid_request(err.message, None))?;
        Ok(ListToolsResult::with_all_items(
            TOOLS
                .iter()
                .filter(|spec| Self::visible_to(spec, &caller))
                .map(describe)
                .collect(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        TOOLS.iter().find(|spec| spec.id == name).map(describe)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(spec) = TOOLS.iter().find(|spec| spec.id == request.name) else {
            return Err(ErrorData::invalid_params(
                format!("no tool `{}`; tools/list names them", request.name),
                None,
            ));
        };
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let outcome = match self.caller(&context) {
            Ok(caller) => self.call(spec, caller, arguments).await,
            Err(err) => Err(err),
        };
        Ok(match outcome {
            Ok(value) => CallToolResult::structured(value),
            Err(err) => CallToolResult::structured_error(json!({
                "error": { "code": err.code, "message": err.message, "details": err.details }
            })),
        }
        .into())
    }
}

fn describe(spec: &ToolSpec) -> Tool {
    let read_only = spec.needs == Scope::Read;
    Tool::new(spec.id, spec.description, (spec.schema)()).annotate(
        ToolAnnotations::new()
            .read_only(read_only)
            .destructive(spec.destructive)
            .open_world(false),
    )
}

fn parse<T: DeserializeOwned>(spec: &ToolSpec, arguments: Value) -> ApiResult<T> {
    serde_json::from_value(arguments).map_err(|err| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("arguments of `{}`: {err}", spec.id),
        )
    })
}

fn mode_of(name: Option<&str>) -> ApiResult<SearchMode> {
    name.map_or(Ok(SearchMode::Dense), |name| {
        name.parse().map_err(|message: String| {
            ApiError::new(ErrorCode::InvalidRequest, format!("mode: {message}"))
        })
    })
}

/// A filter argument: the filter language as a string, or a Qdrant filter object.
fn filter_of(value: Option<Value>) -> ApiResult<Option<Filter>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(expression)) if expression.trim().is_empty() => Ok(None),
        Some(Value::String(expression)) => parse_filter(&expression)
            .map(Some)
            .map_err(|err| ApiError::new(ErrorCode::Unprocessable, format!("filter: {err}"))),
        Some(object @ Value::Object(_)) => {
            let filter: Filter = serde_json::from_value(object).map_err(|err| {
                ApiError::new(ErrorCode::InvalidRequest, format!("filter: {err}"))
            })?;
            filter
                .check_depth()
                .map_err(|err| ApiError::new(ErrorCode::Unprocessable, format!("filter: {err}")))?;
            Ok(Some(filter))
        }
        Some(other) => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("filter: a string or an object, not {other}"),
        )),
    }
}

fn to_object(view: impl serde::Serialize) -> Map<String, Value> {
    match serde_json::to_value(view) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    }
}

/// The Streamable HTTP endpoint over `state`'s engine, for `/mcp`: stateless (any request
/// may reach any server; nothing is held between requests), answering in plain JSON, for the
/// `allowed_hosts` given, and refusing any browser `Origin` not listed in `allowed_origins`.
pub fn http_service(
    state: Arc<AppState>,
    allowed_hosts: Option<Vec<String>>,
    allowed_origins: Vec<String>,
) -> StreamableHttpService<McpTools, NeverSessionManager> {
    let body_limit = state.config.body_limit_bytes;
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(body_limit)
        .with_allowed_origins(allowed_origins)
        .enforce_origin_validation();
    config = match allowed_hosts {
        Some(hosts) => config.with_allowed_hosts(hosts),
        None => config.disable_allowed_hosts(),
    };
    let tools = McpTools { state, local: None };
    StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

/// Serves `tools` over this process's stdin and stdout until the client closes them.
pub async fn serve_stdio(tools: McpTools) -> Result<(), McpServeError> {
    use rmcp::ServiceExt;
    let running = tools
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|err| McpServeError(err.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|err| McpServeError(err.to_string()))?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("the MCP session over stdio failed: {0}")]
pub struct McpServeError(String);
