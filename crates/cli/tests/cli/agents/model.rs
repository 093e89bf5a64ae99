//! A scripted model server on 127.0.0.1 for driving the real agent CLIs (Claude Code, Codex)
//! without a model or the internet.
//!
//! It speaks just enough HTTP/1.1 (one request per connection, `Connection: close`) to serve the
//! Anthropic Messages API (`POST /v1/messages`, SSE) and the OpenAI Responses API
//! (`POST /v1/responses`, SSE). Every request is recorded.
//!
//! The "model" reads directives from the human text of the conversation (see [`Plan`]) and
//! derives its next step from the request alone, so a session resumed in a new process works:
//!
//! - `@write <relpath> <content…>`: write content (`\n` escapes become newlines) to relpath in the
//!   agent's working directory. Claude: `Bash` `pwd` once to learn the directory, then `Write`
//!   with the absolute path (and `Read` + `Write` again when Claude refuses to overwrite an
//!   unread file). Codex: `exec_command` with `mkdir -p … && printf '%s' … > relpath`.
//! - `@run <shell command>`: run it (Claude `Bash`, Codex `exec_command`).
//! - `@loop`: call a harmless command (`true`) forever.
//! - `@fail <status>`: answer this turn with HTTP `<status>` and the API's error JSON;
//!   `@fail stream`: answer 200 and fail inside the stream (Anthropic `error` event, OpenAI
//!   `response.failed`). It fails every time it is reached.
//! - `@say <text>`: the final assistant message (default `done`).
//! - `@review <json…>`: the final assistant message is that JSON text (also as `+@review …`,
//!   an added line of a diff in a reviewer's prompt).
//! - `WANT <relpath>=<content>`: a write, run after the directives.
//!
//! Directives run in order, one tool call per model turn, then the final message. Only the
//! latest human message is acted on (its directives, then its `WANT` lines); the tool results
//! after it say how far it got. The final text is the latest human message's `@say`/`@review`,
//! else the first one's, else `done`.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

/// Token counts reported on every Anthropic response (`message_start` and `message_delta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AnthropicUsage {
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) cache_read: u64,
    pub(crate) cache_creation: u64,
}

/// Token counts reported on every OpenAI response (`response.completed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenAiUsage {
    pub(crate) input: u64,
    pub(crate) cached: u64,
    pub(crate) output: u64,
    pub(crate) reasoning: u64,
}

/// How the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelConfig {
    /// Usage on each agent turn of the Messages API.
    pub(crate) anthropic_usage: AnthropicUsage,
    /// Usage on each side request of the Messages API (a request without `tools`: title
    /// generation and the like).
    pub(crate) anthropic_side_usage: AnthropicUsage,
    /// Usage on each Responses API turn.
    pub(crate) openai_usage: OpenAiUsage,
    /// The model name put in responses; `None` echoes the request's `model`.
    pub(crate) model: Option<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            anthropic_usage: AnthropicUsage { input: 1000, output: 200, cache_read: 300, cache_creation: 100 },
            anthropic_side_usage: AnthropicUsage { input: 10, output: 5, cache_read: 0, cache_creation: 0 },
            openai_usage: OpenAiUsage { input: 1000, cached: 300, output: 200, reasoning: 0 },
            model: None,
        }
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    /// `GET`, `POST`, `HEAD`, `CONNECT` (a proxy request, when the server is used as
    /// `HTTPS_PROXY` to catch network attempts), …
    pub(crate) method: String,
    /// The request target, query included (`/v1/messages?beta=true`; `host:443` for CONNECT).
    pub(crate) path: String,
    /// Header names in lower case.
    pub(crate) headers: Vec<(String, String)>,
    /// The body parsed as JSON; `Null` when empty; a JSON string when it is not JSON.
    pub(crate) body: Value,
}

impl Recorded {
    /// The path without the query.
    pub(crate) fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// A header's value (name in any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// An agent turn of Claude Code: `POST /v1/messages` with tools.
    pub(crate) fn is_anthropic_turn(&self) -> bool {
        self.method == "POST" && self.route() == "/v1/messages" && has_tools(&self.body)
    }

    /// A turn of Codex: `POST /v1/responses`.
    pub(crate) fn is_openai_turn(&self) -> bool {
        self.method == "POST" && self.route() == "/v1/responses"
    }

    /// The names of the tools the request offers.
    pub(crate) fn tool_names(&self) -> Vec<String> {
        self.body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().or_else(|| t["type"].as_str()).map(str::to_owned))
            .collect()
    }
}

struct Shared {
    config: Mutex<ModelConfig>,
    requests: Mutex<Vec<Recorded>>,
    stop: AtomicBool,
    ids: AtomicU64,
}

impl Shared {
    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The server. It serves until dropped.
pub(crate) struct ScriptedModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ScriptedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedModel").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl ScriptedModel {
    /// Starts a server with the default [`ModelConfig`] on `127.0.0.1:0`.
    pub(crate) fn start() -> Self {
        Self::start_with(ModelConfig::default())
    }

    /// Starts a server with `config` on `127.0.0.1:0`.
    pub(crate) fn start_with(config: ModelConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            config: Mutex::new(config),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            ids: AtomicU64::new(1),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("scripted-model".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if shared.stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let shared = Arc::clone(&shared);
                        // A connection that dies mid-request is the client's business.
                        let _detached =
                            std::thread::Builder::new().name("scripted-model-conn".into()).spawn(move || drop(serve(stream, &shared)));
                    }
                })
                .expect("spawn server thread")
        };
        Self { addr, shared, accept: Some(accept) }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash, no `/v1`).
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// Claude Code's agent turns so far (`POST /v1/messages` with tools).
    pub(crate) fn anthropic_turns(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(Recorded::is_anthropic_turn).collect()
    }

    /// Codex's turns so far (`POST /v1/responses`).
    pub(crate) fn openai_turns(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(Recorded::is_openai_turn).collect()
    }

    /// The configuration now in use.
    pub(crate) fn config(&self) -> ModelConfig {
        lock(&self.shared.config).clone()
    }

    /// Replaces the configuration for the requests that come next.
    pub(crate) fn set_config(&self, config: ModelConfig) {
        *lock(&self.shared.config) = config;
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        drop(TcpStream::connect(self.addr));
        if let Some(accept) = self.accept.take() {
            drop(accept.join());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn read_request(reader: &mut impl BufRead) -> io::Result<Request> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    if method.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no request line"));
    }
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut req = Request { method, path, headers, body: Vec::new() };
    let chunked = req.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = req.body.len();
            req.body.resize(start + size, 0);
            reader.read_exact(&mut req.body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else if let Some(len) = req.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        req.body.resize(len, 0);
        reader.read_exact(&mut req.body)?;
    }
    Ok(req)
}

enum Reply {
    Json(u16, Value),
    Sse(String),
    Empty(u16),
}

fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let req = read_request(&mut reader)?;
    let body = if req.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&req.body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&req.body).into_owned()))
    };
    lock(&shared.requests).push(Recorded {
        method: req.method.clone(),
        path: req.path.clone(),
        headers: req.headers.clone(),
        body: body.clone(),
    });
    let config = lock(&shared.config).clone();
    let route = req.path.split('?').next().unwrap_or_default();
    let reply = match (req.method.as_str(), route) {
        // Used as HTTPS_PROXY, the server refuses every tunnel (and has recorded it).
        ("CONNECT", _) => Reply::Empty(403),
        ("HEAD", _) => Reply::Empty(200),
        ("POST", "/v1/messages/count_tokens") => Reply::Json(200, json!({ "input_tokens": config.anthropic_usage.input })),
        ("POST", "/v1/messages") => anthropic_reply(&body, &config, shared),
        ("POST", "/v1/responses") => openai_reply(&body, &config, shared),
        ("GET", "/v1/models") => Reply::Json(200, json!({ "object": "list", "data": [], "models": [] })),
        _ => Reply::Json(200, json!({})),
    };
    let mut out = stream;
    match reply {
        Reply::Empty(status) => write!(out, "HTTP/1.1 {status} {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", reason(status))?,
        Reply::Json(status, value) => {
            let text = value.to_string();
            write!(
                out,
                "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{text}",
                reason(status),
                text.len()
            )?;
        }
        Reply::Sse(text) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
                 connection: close\r\n\r\n{text}"
            )?;
        }
    }
    out.flush()?;
    out.shutdown(Shutdown::Both)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        529 => "Overloaded",
        _ => "Status",
    }
}

fn sse(events: &[Value]) -> String {
    let mut out = String::new();
    for event in events {
        let name = event["type"].as_str().unwrap_or("message");
        out.push_str(&format!("event: {name}\ndata: {event}\n\n"));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The script

/// A step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Write { path: String, content: String },
    Run(String),
    Loop,
    Fail(Failure),
}

/// How `@fail` fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Status(u16),
    Stream,
}

/// What one human message asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Plan {
    actions: Vec<Action>,
    wants: Vec<Action>,
    final_text: Option<String>,
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

impl Plan {
    fn parse(text: &str) -> Self {
        let mut plan = Self::default();
        for line in text.lines() {
            let line = line.trim();
            let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match word {
                "@write" => {
                    let (path, content) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                    plan.actions.push(Action::Write { path: path.to_owned(), content: unescape(content) });
                }
                "@run" => plan.actions.push(Action::Run(rest.to_owned())),
                "@loop" => plan.actions.push(Action::Loop),
                "@fail" => plan.actions.push(Action::Fail(match rest {
                    "stream" => Failure::Stream,
                    s => Failure::Status(s.parse().unwrap_or(500)),
                })),
                "@say" => plan.final_text = Some(unescape(rest)),
                // `+@review` is the same directive on an added line of a diff: how a reviewer
                // agent, shown the task's diff, learns what to answer.
                "@review" | "+@review" => plan.final_text = Some(rest.to_owned()),
                "WANT" => {
                    if let Some((path, content)) = rest.split_once('=') {
                        plan.wants.push(Action::Write { path: path.trim().to_owned(), content: unescape(content) });
                    }
                }
                _ => {}
            }
        }
        plan
    }

    fn steps(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().chain(&self.wants)
    }
}

/// A conversation flattened from either API.
#[derive(Debug)]
enum Item {
    Human(String),
    Call { id: String, name: String, input: Value },
    Output { id: String, text: String, is_error: bool },
}

/// What the model does next.
#[derive(Debug)]
enum Step {
    Call { name: &'static str, input: Value },
    Final(String),
    Fail(Failure),
}

/// Which tools the model calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Claude,
    Codex,
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn next_step(items: &[Item], dialect: Dialect) -> Step {
    let humans: Vec<usize> = items.iter().enumerate().filter_map(|(i, item)| matches!(item, Item::Human(_)).then_some(i)).collect();
    let text = |i: usize| match &items[i] {
        Item::Human(t) => t.as_str(),
        _ => "",
    };
    let (Some(&first), Some(&last)) = (humans.first(), humans.last()) else {
        return Step::Final("done".into());
    };
    let plan = Plan::parse(text(last));
    let final_text = plan.final_text.clone().or_else(|| Plan::parse(text(first)).final_text).unwrap_or_else(|| "done".into());
    let output_of = |id: &str| {
        items.iter().find_map(|item| match item {
            Item::Output { id: oid, text, is_error } if oid == id => Some((text.as_str(), *is_error)),
            _ => None,
        })
    };
    // The working directory, from a `pwd` call before this human message (Claude only).
    let mut cwd = items[..last].iter().find_map(|item| match item {
        Item::Call { id, name, input } if name == "Bash" && input["command"] == "pwd" => {
            output_of(id).and_then(|(text, err)| (!err).then(|| first_line(text)))
        }
        _ => None,
    });
    let mut outputs = items[last..].iter().filter_map(|item| match item {
        Item::Output { text, is_error, .. } => Some((text.as_str(), *is_error)),
        _ => None,
    });
    let bash = |command: &str| match dialect {
        Dialect::Claude => Step::Call { name: "Bash", input: json!({ "command": command, "description": "Run a command" }) },
        Dialect::Codex => Step::Call { name: "exec_command", input: json!({ "cmd": command }) },
    };
    // One tool call: returns it when it has no output yet, else its output.
    macro_rules! call {
        ($step:expr) => {
            match outputs.next() {
                None => return $step,
                Some(output) => output,
            }
        };
    }
    for action in plan.steps() {
        match action {
            Action::Write { path, content } => match dialect {
                Dialect::Claude => {
                    let dir = match &cwd {
                        Some(dir) => dir.clone(),
                        None => {
                            let (text, _) = call!(bash("pwd"));
                            let dir = first_line(text);
                            cwd = Some(dir.clone());
                            dir
                        }
                    };
                    let file_path = format!("{}/{path}", dir.trim_end_matches('/'));
                    let write = || Step::Call { name: "Write", input: json!({ "file_path": file_path, "content": content }) };
                    let (text, is_error) = call!(write());
                    if is_error && (text.contains("not been read") || text.contains("Read it first")) {
                        call!(Step::Call { name: "Read", input: json!({ "file_path": file_path }) });
                        call!(write());
                    }
                }
                Dialect::Codex => {
                    let mut cmd = String::new();
                    if let Some((dir, _)) = path.rsplit_once('/') {
                        cmd.push_str(&format!("mkdir -p {} && ", sh_quote(dir)));
                    }
                    cmd.push_str(&format!("printf '%s' {} > {}", sh_quote(content), sh_quote(path)));
                    call!(bash(&cmd));
                }
            },
            Action::Run(command) => {
                call!(bash(command));
            }
            Action::Loop => return bash("true"),
            Action::Fail(failure) => return Step::Fail(*failure),
        }
    }
    Step::Final(final_text)
}

fn first_line(text: &str) -> String {
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default().to_owned()
}

fn has_tools(body: &Value) -> bool {
    body["tools"].as_array().is_some_and(|t| !t.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages API

fn block_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

/// The conversation of a Messages API request.
fn anthropic_items(body: &Value) -> Vec<Item> {
    let mut items = Vec::new();
    for message in body["messages"].as_array().into_iter().flatten() {
        let blocks: Vec<Value> = match &message["content"] {
            Value::String(s) => vec![json!({ "type": "text", "text": s })],
            Value::Array(blocks) => blocks.clone(),
            _ => Vec::new(),
        };
        match message["role"].as_str() {
            Some("user") => {
                let has_result = blocks.iter().any(|b| b["type"] == "tool_result");
                let human = blocks
                    .iter()
                    .rev()
                    .filter(|b| b["type"] == "text")
                    .filter_map(|b| b["text"].as_str())
                    .find(|t| !t.trim_start().starts_with("<system-reminder>"));
                for b in blocks.iter().filter(|b| b["type"] == "tool_result") {
                    items.push(Item::Output {
                        id: b["tool_use_id"].as_str().unwrap_or_default().to_owned(),
                        text: block_text(&b["content"]),
                        is_error: b["is_error"].as_bool().unwrap_or(false),
                    });
                }
                if let (false, Some(text)) = (has_result, human) {
                    items.push(Item::Human(text.to_owned()));
                }
            }
            Some("assistant") => {
                for b in blocks.iter().filter(|b| b["type"] == "tool_use") {
                    items.push(Item::Call {
                        id: b["id"].as_str().unwrap_or_default().to_owned(),
                        name: b["name"].as_str().unwrap_or_default().to_owned(),
                        input: b["input"].clone(),
                    });
                }
            }
            _ => {}
        }
    }
    items
}

fn anthropic_usage_json(u: AnthropicUsage, output: u64) -> Value {
    json!({
        "input_tokens": u.input,
        "cache_creation_input_tokens": u.cache_creation,
        "cache_read_input_tokens": u.cache_read,
        "output_tokens": output,
    })
}

fn anthropic_error(status: u16) -> Value {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    json!({ "type": "error", "error": { "type": kind, "message": format!("scripted failure ({status})") } })
}

fn anthropic_reply(body: &Value, config: &ModelConfig, shared: &Shared) -> Reply {
    let model = config.model.clone().or_else(|| body["model"].as_str().map(str::to_owned)).unwrap_or_else(|| "claude-sonnet-4-5".into());
    let (step, usage) = if has_tools(body) {
        (next_step(&anthropic_items(body), Dialect::Claude), config.anthropic_usage)
    } else {
        (Step::Final("Scripted session".into()), config.anthropic_side_usage)
    };
    let n = shared.next_id();
    let message_id = format!("msg_scripted_{n:06}");
    if body["stream"] != true {
        // Claude Code falls back to a non-streaming request when a stream breaks.
        let (content, stop_reason) = match step {
            Step::Fail(Failure::Status(status)) => {
                return Reply::Json(status, anthropic_error(status));
            }
            Step::Fail(Failure::Stream) => return Reply::Json(500, anthropic_error(500)),
            Step::Final(text) => (json!([{ "type": "text", "text": text }]), "end_turn"),
            Step::Call { name, input } => (
                json!([{ "type": "tool_use", "id": format!("toolu_scripted_{n:06}"),
                    "name": name, "input": input }]),
                "tool_use",
            ),
        };
        return Reply::Json(
            200,
            json!({
                "id": message_id, "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": stop_reason, "stop_sequence": null,
                "usage": anthropic_usage_json(usage, usage.output),
            }),
        );
    }
    let mut events = vec![json!({
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": anthropic_usage_json(usage, 1),
        }
    })];
    let stop_reason = match step {
        Step::Fail(Failure::Status(status)) => return Reply::Json(status, anthropic_error(status)),
        Step::Fail(Failure::Stream) => {
            events.push(json!({ "type": "error", "error": anthropic_error(529)["error"] }));
            return Reply::Sse(sse(&events));
        }
        Step::Final(text) => {
            events.push(json!({ "type": "content_block_start", "index": 0,
                "content_block": { "type": "text", "text": "" } }));
            events.push(json!({ "type": "content_block_delta", "index": 0,
                "delta": { "type": "text_delta", "text": text } }));
            "end_turn"
        }
        Step::Call { name, input } => {
            events.push(json!({ "type": "content_block_start", "index": 0,
                "content_block": { "type": "tool_use", "id": format!("toolu_scripted_{n:06}"),
                    "name": name, "input": {} } }));
            events.push(json!({ "type": "content_block_delta", "index": 0,
                "delta": { "type": "input_json_delta", "partial_json": input.to_string() } }));
            "tool_use"
        }
    };
    events.push(json!({ "type": "content_block_stop", "index": 0 }));
    events.push(json!({
        "type": "message_delta",
        "delta": { "stop_reason": stop_reason, "stop_sequence": null },
        "usage": anthropic_usage_json(usage, usage.output),
    }));
    events.push(json!({ "type": "message_stop" }));
    Reply::Sse(sse(&events))
}

// ---------------------------------------------------------------------------------------------
// OpenAI Responses API

/// Text Codex adds as user messages around the human's prompt.
fn is_codex_context(text: &str) -> bool {
    let t = text.trim_start();
    ["<environment_context>", "<user_instructions>", "<permissions instructions>", "<user_shell_command>", "# AGENTS.md instructions"]
        .iter()
        .any(|p| t.starts_with(p))
}

/// The conversation of a Responses API request.
fn openai_items(body: &Value) -> Vec<Item> {
    let mut items = Vec::new();
    let input = match &body["input"] {
        Value::String(s) => vec![json!({ "type": "message", "role": "user", "content": s })],
        Value::Array(a) => a.clone(),
        _ => Vec::new(),
    };
    for item in input {
        let kind = item["type"].as_str().unwrap_or("message");
        match kind {
            "message" if item["role"] == "user" => {
                let text = match &item["content"] {
                    Value::String(s) => Some(s.clone()),
                    Value::Array(parts) => {
                        parts.iter().rev().filter_map(|p| p["text"].as_str()).find(|t| !is_codex_context(t)).map(str::to_owned)
                    }
                    _ => None,
                };
                if let Some(text) = text.filter(|t| !is_codex_context(t)) {
                    items.push(Item::Human(text));
                }
            }
            "function_call" | "custom_tool_call" | "local_shell_call" => {
                let input = item["arguments"].as_str().and_then(|a| serde_json::from_str(a).ok()).unwrap_or(Value::Null);
                items.push(Item::Call {
                    id: item["call_id"].as_str().unwrap_or_default().to_owned(),
                    name: item["name"].as_str().unwrap_or_default().to_owned(),
                    input,
                });
            }
            "function_call_output" | "custom_tool_call_output" | "local_shell_call_output" => {
                let text = match &item["output"] {
                    Value::String(s) => s.clone(),
                    other => block_text(&other["content"]) + &block_text(other),
                };
                items.push(Item::Output { id: item["call_id"].as_str().unwrap_or_default().to_owned(), text, is_error: false });
            }
            _ => {}
        }
    }
    items
}

fn openai_reply(body: &Value, config: &ModelConfig, shared: &Shared) -> Reply {
    let model = config.model.clone().or_else(|| body["model"].as_str().map(str::to_owned)).unwrap_or_else(|| "gpt-test".into());
    let n = shared.next_id();
    let id = format!("resp_scripted_{n:06}");
    let u = config.openai_usage;
    let usage = json!({
        "input_tokens": u.input,
        "input_tokens_details": { "cached_tokens": u.cached },
        "output_tokens": u.output,
        "output_tokens_details": { "reasoning_tokens": u.reasoning },
        "total_tokens": u.input + u.output,
    });
    let created = json!({
        "type": "response.created",
        "response": { "id": id, "object": "response", "status": "in_progress", "model": model,
            "output": [] },
    });
    let item = match next_step(&openai_items(body), Dialect::Codex) {
        Step::Fail(Failure::Status(status)) => {
            return Reply::Json(
                status,
                json!({ "error": { "type": "server_error", "code": "server_error",
                    "message": format!("scripted failure ({status})") } }),
            );
        }
        Step::Fail(Failure::Stream) => {
            let failed = json!({
                "type": "response.failed",
                "response": { "id": id, "object": "response", "status": "failed", "model": model,
                    "output": [], "usage": usage,
                    "error": { "code": "server_error", "message": "scripted failure (stream)" } },
            });
            return Reply::Sse(sse(&[created, failed]));
        }
        Step::Final(text) => json!({
            "type": "message", "id": format!("msg_scripted_{n:06}"), "role": "assistant",
            "status": "completed",
            "content": [{ "type": "output_text", "text": text, "annotations": [] }],
        }),
        Step::Call { name, input } => json!({
            "type": "function_call", "id": format!("fc_scripted_{n:06}"),
            "call_id": format!("call_scripted_{n:06}"), "name": name,
            "arguments": input.to_string(), "status": "completed",
        }),
    };
    let events = [
        created,
        json!({ "type": "response.output_item.added", "output_index": 0, "item": item }),
        json!({ "type": "response.output_item.done", "output_index": 0, "item": item }),
        json!({
            "type": "response.completed",
            "response": { "id": id, "object": "response", "status": "completed", "model": model,
                "output": [item], "usage": usage },
        }),
    ];
    Reply::Sse(sse(&events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse() {
        let plan = Plan::parse("Do it.\n@write src/a.txt hello\\nworld\n@run make test\n@say all good\nWANT b=x=y\n");
        assert_eq!(
            plan.actions,
            vec![Action::Write { path: "src/a.txt".into(), content: "hello\nworld".into() }, Action::Run("make test".into()),]
        );
        assert_eq!(plan.wants, vec![Action::Write { path: "b".into(), content: "x=y".into() }]);
        assert_eq!(plan.final_text.as_deref(), Some("all good"));
    }

    #[test]
    fn claude_learns_cwd_then_writes() {
        let mut items = vec![Item::Human("@write a.txt hi".into())];
        let Step::Call { name: "Bash", input } = next_step(&items, Dialect::Claude) else { panic!("pwd first") };
        assert_eq!(input["command"], "pwd");
        items.push(Item::Call { id: "1".into(), name: "Bash".into(), input });
        items.push(Item::Output { id: "1".into(), text: "/r\n".into(), is_error: false });
        let Step::Call { name: "Write", input } = next_step(&items, Dialect::Claude) else { panic!("write next") };
        assert_eq!(input["file_path"], "/r/a.txt");
        items.push(Item::Output { id: "2".into(), text: "ok".into(), is_error: false });
        assert!(matches!(next_step(&items, Dialect::Claude), Step::Final(t) if t == "done"));
        // A later message with WANT: cwd is known already, so Write straight away.
        items.push(Item::Human("fix it\nWANT b.txt=2".into()));
        let Step::Call { name: "Write", input } = next_step(&items, Dialect::Claude) else { panic!("write want") };
        assert_eq!(input["file_path"], "/r/b.txt");
        assert_eq!(input["content"], "2");
    }

    #[test]
    fn codex_write_is_one_shell_command() {
        let items = vec![Item::Human("@write d/it's.txt a\\nb".into())];
        let Step::Call { name: "exec_command", input } = next_step(&items, Dialect::Codex) else { panic!("exec") };
        assert_eq!(input["cmd"], "mkdir -p 'd' && printf '%s' 'a\nb' > 'd/it'\\''s.txt'");
    }
}
