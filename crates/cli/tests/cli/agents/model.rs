//! A scripted model server on 127.0.0.1 for driving the real agent CLIs (Claude Code, Codex,
//! Gemini CLI, opencode, aider) without a model or the internet.
//!
//! It speaks just enough HTTP/1.1 (one request per connection, `Connection: close`) to serve the
//! Anthropic Messages API (`POST /v1/messages`, SSE), the OpenAI Responses API
//! (`POST /v1/responses`, SSE), the Gemini API (`POST /v1beta/models/<model>:streamGenerateContent`,
//! SSE, and `:generateContent`) and the OpenAI Chat Completions API (`POST /v1/chat/completions`,
//! SSE with `tool_calls` deltas and a usage chunk when `stream_options.include_usage`, or one
//! JSON answer). Every request is recorded.
//!
//! The "model" reads directives from the human text of the conversation (see [`Plan`]) and
//! derives its next step from the request alone, so a session resumed in a new process works:
//!
//! - `@write <relpath> <content…>`: write content (`\n` escapes become newlines) to relpath in the
//!   agent's working directory. Claude: `Bash` `pwd` once to learn the directory, then `Write`
//!   with the absolute path (and `Read` + `Write` again when Claude refuses to overwrite an
//!   unread file). Codex: `exec_command` with `mkdir -p … && printf '%s' … > relpath`. Gemini:
//!   `write_file` with the relative path. opencode: `write` with the relative path (`apply_patch`
//!   when that is what it offers, as it does for model ids containing `gpt`; `read` + `write`
//!   again when it asks for a read first). aider: a whole-file edit block in the reply text
//!   (`relpath`, a fence, the content, a fence; a `SEARCH/REPLACE` block when aider asks for
//!   the `diff` format).
//! - `@run <shell command>`: run it (Claude `Bash`, Codex `exec_command`, Gemini
//!   `run_shell_command`, opencode `bash`; aider gets a ```` ```bash ```` block it may suggest).
//! - `@loop`: call a harmless tool forever (Claude and Codex the command `true`, Gemini
//!   `list_directory`, opencode `glob`).
//! - `@fail <status>`: answer this turn with HTTP `<status>` and the API's error JSON;
//!   `@fail stream`: answer 200 and fail inside the stream (Anthropic `error` event, OpenAI
//!   `response.failed`, a Gemini or Chat Completions chunk holding an `error`). It fails every
//!   time it is reached.
//! - `@say <text>`: the final assistant message (default `done`).
//! - `@review <json…>`: the final assistant message is that JSON text (also as `+@review …`,
//!   an added line of a diff in a reviewer's prompt).
//! - `WANT <relpath>=<content>`: a write, run after the directives.
//!
//! Directives run in order, one tool call per model turn, then the final message. Only the
//! latest human message is acted on (its directives, then its `WANT` lines); the tool results
//! after it say how far it got. The final text is the latest human message's `@say`/`@review`,
//! else the first one's, else `done`.
//!
//! aider sends plain chat messages, no tools: its human message is the latest user message that
//! holds a directive (aider's own follow-ups, such as "I added these files to the chat", hold
//! none), and one reply carries every write of it (the last content of each file wins). The
//! edits count as made once a later user message says aider applied them ("I updated the
//! files", "I committed the changes"); until then every request gets the edit blocks again
//! (aider asks again when it added a mentioned file to the chat instead of applying the reply).
//! A Chat Completions request without tools whose system prompt is opencode's title generator
//! gets a title; requests without tools to the Gemini API (its model router, JSON-schema side
//! calls) get the JSON they ask for.

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

/// Token counts reported on every Gemini API agent turn (`usageMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GeminiUsage {
    /// `promptTokenCount` (cached tokens included, as the API counts them).
    pub(crate) prompt: u64,
    /// `cachedContentTokenCount`.
    pub(crate) cached: u64,
    /// `candidatesTokenCount`.
    pub(crate) candidates: u64,
}

/// Token counts reported on every Chat Completions answer (`usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChatUsage {
    /// `prompt_tokens`.
    pub(crate) prompt: u64,
    /// `completion_tokens`.
    pub(crate) completion: u64,
}

/// Tokens reported on side requests of the Gemini and Chat Completions APIs (a request
/// without tools: opencode's title, Gemini's router): input, output.
pub(crate) const SIDE_TOKENS: (u64, u64) = (10, 5);

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
    /// Usage on each Gemini API agent turn.
    pub(crate) gemini_usage: GeminiUsage,
    /// Usage on each Chat Completions agent turn (opencode's turns, aider's replies).
    pub(crate) chat_usage: ChatUsage,
    /// The model name put in responses; `None` echoes the request's `model`.
    pub(crate) model: Option<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            anthropic_usage: AnthropicUsage { input: 1000, output: 200, cache_read: 300, cache_creation: 100 },
            anthropic_side_usage: AnthropicUsage { input: 10, output: 5, cache_read: 0, cache_creation: 0 },
            openai_usage: OpenAiUsage { input: 1000, cached: 300, output: 200, reasoning: 0 },
            gemini_usage: GeminiUsage { prompt: 1000, cached: 300, candidates: 200 },
            chat_usage: ChatUsage { prompt: 1000, completion: 200 },
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

    /// An agent turn of Gemini CLI: `POST /v1beta/models/<model>:streamGenerateContent` (or
    /// `:generateContent`) with tools.
    pub(crate) fn is_gemini_turn(&self) -> bool {
        self.method == "POST" && gemini_route(self.route()).is_some() && has_gemini_tools(&self.body)
    }

    /// A Chat Completions request (`POST /v1/chat/completions`) that is not opencode's title
    /// request: an opencode turn (with tools) or an aider reply (without).
    pub(crate) fn is_chat_turn(&self) -> bool {
        self.method == "POST" && self.route() == "/v1/chat/completions" && !is_title_request(&self.body)
    }

    /// The names of the tools the request offers (Anthropic, Responses, Chat Completions and
    /// Gemini shapes).
    pub(crate) fn tool_names(&self) -> Vec<String> {
        let tools = self.body["tools"].as_array().into_iter().flatten();
        tools
            .flat_map(|t| {
                let mut names: Vec<String> = t["functionDeclarations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["name"].as_str().map(str::to_owned))
                    .collect();
                if names.is_empty() {
                    names.extend(
                        t["function"]["name"].as_str().or_else(|| t["name"].as_str()).or_else(|| t["type"].as_str()).map(str::to_owned),
                    );
                }
                names
            })
            .collect()
    }

    /// The text of every message and part of the request, for "did it say X" checks.
    pub(crate) fn text(&self) -> String {
        self.body.to_string()
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

    /// Gemini CLI's agent turns so far (see [`Recorded::is_gemini_turn`]).
    pub(crate) fn gemini_turns(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(Recorded::is_gemini_turn).collect()
    }

    /// opencode's turns and aider's replies so far (see [`Recorded::is_chat_turn`]).
    pub(crate) fn chat_turns(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(Recorded::is_chat_turn).collect()
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
        ("POST", "/v1/chat/completions") => chat_reply(&body, &config, shared),
        ("POST", r) if gemini_route(r).is_some() => {
            let (model, method) = gemini_route(r).unwrap_or_default();
            gemini_reply(model, method, &body, &config)
        }
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

/// Server-sent events with `data:` lines only (the Gemini and Chat Completions streams).
fn sse_data(chunks: &[Value]) -> String {
    let mut out = String::new();
    for chunk in chunks {
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    out
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

/// A conversation flattened from any of the APIs.
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
    Gemini,
    /// opencode; `patch` when it offers `apply_patch` and no `write`.
    Opencode {
        patch: bool,
    },
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
        Dialect::Gemini => Step::Call { name: "run_shell_command", input: json!({ "command": command, "description": "Run a command" }) },
        Dialect::Opencode { .. } => Step::Call { name: "bash", input: json!({ "command": command, "description": "Run a command" }) },
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
                Dialect::Gemini => {
                    call!(Step::Call { name: "write_file", input: json!({ "file_path": path, "content": content }) });
                }
                Dialect::Opencode { patch: true } => {
                    let lines: String = content.lines().map(|l| format!("+{l}\n")).collect();
                    let patch = format!("*** Begin Patch\n*** Add File: {path}\n{lines}*** End Patch");
                    call!(Step::Call { name: "apply_patch", input: json!({ "patchText": patch }) });
                }
                Dialect::Opencode { patch: false } => {
                    let write = || Step::Call { name: "write", input: json!({ "filePath": path, "content": content }) };
                    let (text, _) = call!(write());
                    let lower = text.to_ascii_lowercase();
                    if lower.contains("read") && (lower.contains("before") || lower.contains("first")) {
                        call!(Step::Call { name: "read", input: json!({ "filePath": path }) });
                        call!(write());
                    }
                }
            },
            Action::Run(command) => {
                call!(bash(command));
            }
            Action::Loop => {
                return match dialect {
                    Dialect::Gemini => Step::Call { name: "list_directory", input: json!({ "dir_path": "." }) },
                    Dialect::Opencode { .. } => Step::Call { name: "glob", input: json!({ "pattern": "*" }) },
                    Dialect::Claude | Dialect::Codex => bash("true"),
                };
            }
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

// ---------------------------------------------------------------------------------------------
// Gemini API

/// The model and method of a Gemini API path: `/v1beta/models/<model>:<method>`.
fn gemini_route(route: &str) -> Option<(&str, &str)> {
    let rest = route.strip_prefix("/v1beta/models/").or_else(|| route.strip_prefix("/v1/models/"))?;
    let (model, method) = rest.split_once(':')?;
    matches!(method, "streamGenerateContent" | "generateContent" | "countTokens").then_some((model, method))
}

fn has_gemini_tools(body: &Value) -> bool {
    body["tools"].as_array().into_iter().flatten().any(|t| t["functionDeclarations"].as_array().is_some_and(|f| !f.is_empty()))
}

/// The conversation of a Gemini API request. The CLI's first user message is a
/// `<session_context>` block; a resumed session repeats some `functionResponse` parts (each
/// call's first response is kept).
fn gemini_items(body: &Value) -> Vec<Item> {
    let mut items = Vec::new();
    let mut answered = std::collections::HashSet::new();
    for content in body["contents"].as_array().into_iter().flatten() {
        let parts = content["parts"].as_array().cloned().unwrap_or_default();
        match content["role"].as_str() {
            Some("model") => {
                for call in parts.iter().filter_map(|p| p.get("functionCall")) {
                    items.push(Item::Call {
                        id: call["id"].as_str().unwrap_or_default().to_owned(),
                        name: call["name"].as_str().unwrap_or_default().to_owned(),
                        input: call["args"].clone(),
                    });
                }
            }
            _ => {
                let responses: Vec<&Value> = parts.iter().filter_map(|p| p.get("functionResponse")).collect();
                for r in &responses {
                    let id = r["id"].as_str().or_else(|| r["name"].as_str()).unwrap_or_default().to_owned();
                    if !answered.insert(id.clone()) {
                        continue;
                    }
                    let response = &r["response"];
                    let (text, is_error) = match (response.get("error"), response.get("output")) {
                        (Some(e), _) => (e.as_str().map_or_else(|| e.to_string(), str::to_owned), true),
                        (None, Some(Value::String(o))) => (o.clone(), false),
                        _ => (response.to_string(), false),
                    };
                    items.push(Item::Output { id, text, is_error });
                }
                let human = parts
                    .iter()
                    .rev()
                    .filter_map(|p| p["text"].as_str())
                    .find(|t| !t.trim_start().starts_with("<session_context>") && !t.trim().is_empty());
                if let (true, Some(text)) = (responses.is_empty(), human) {
                    items.push(Item::Human(text.to_owned()));
                }
            }
        }
    }
    items
}

fn gemini_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

fn gemini_error(status: u16) -> Value {
    json!({ "error": { "code": status, "message": format!("scripted failure ({status})"), "status": gemini_status(status) } })
}

/// The JSON a side request without tools asks for (the model router's classifiers, the
/// next-speaker check), else plain text.
fn gemini_side_text(body: &Value) -> String {
    let asked = format!("{}{}", body["generationConfig"], body["systemInstruction"]);
    if asked.contains("complexity_score") {
        json!({ "complexity_reasoning": "a scripted task", "complexity_score": 10 }).to_string()
    } else if asked.contains("model_choice") {
        json!({ "reasoning": "a scripted task", "model_choice": "flash" }).to_string()
    } else if body.to_string().contains("next_speaker") {
        json!({ "reasoning": "the model is done", "next_speaker": "user" }).to_string()
    } else {
        "ok".to_owned()
    }
}

fn gemini_reply(path_model: &str, method: &str, body: &Value, config: &ModelConfig) -> Reply {
    let model = config.model.clone().unwrap_or_else(|| path_model.to_owned());
    if method == "countTokens" {
        return Reply::Json(200, json!({ "totalTokens": config.gemini_usage.prompt }));
    }
    let stream = method == "streamGenerateContent";
    let (step, usage) = if has_gemini_tools(body) {
        (next_step(&gemini_items(body), Dialect::Gemini), config.gemini_usage)
    } else {
        (Step::Final(gemini_side_text(body)), GeminiUsage { prompt: SIDE_TOKENS.0, cached: 0, candidates: SIDE_TOKENS.1 })
    };
    let parts = match step {
        Step::Fail(Failure::Status(status)) => return Reply::Json(status, gemini_error(status)),
        Step::Fail(Failure::Stream) if stream => return Reply::Sse(sse_data(&[gemini_error(500)])),
        Step::Fail(Failure::Stream) => return Reply::Json(500, gemini_error(500)),
        Step::Final(text) => json!([{ "text": text }]),
        Step::Call { name, input } => json!([{ "functionCall": { "name": name, "args": input } }]),
    };
    let answer = json!({
        "candidates": [{ "content": { "role": "model", "parts": parts }, "finishReason": "STOP", "index": 0 }],
        "usageMetadata": {
            "promptTokenCount": usage.prompt,
            "cachedContentTokenCount": usage.cached,
            "candidatesTokenCount": usage.candidates,
            "totalTokenCount": usage.prompt + usage.candidates,
        },
        "modelVersion": model,
    });
    if stream { Reply::Sse(sse_data(&[answer])) } else { Reply::Json(200, answer) }
}

// ---------------------------------------------------------------------------------------------
// OpenAI Chat Completions API (opencode with tools, aider without)

/// opencode's title request: no tools, its title generator's system prompt.
fn is_title_request(body: &Value) -> bool {
    !has_tools(body)
        && body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["role"] == "system" && chat_text(&m["content"]).contains("title generator"))
}

/// A message's text: a string, or the text parts of an array.
fn chat_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

/// The conversation of a Chat Completions request with tools.
fn chat_items(body: &Value) -> Vec<Item> {
    let mut items = Vec::new();
    for message in body["messages"].as_array().into_iter().flatten() {
        match message["role"].as_str() {
            Some("user") => {
                let text = chat_text(&message["content"]);
                if !text.trim_start().starts_with("<system-reminder>") {
                    items.push(Item::Human(text));
                }
            }
            Some("assistant") => {
                for call in message["tool_calls"].as_array().into_iter().flatten() {
                    let input = call["function"]["arguments"].as_str().and_then(|a| serde_json::from_str(a).ok()).unwrap_or(Value::Null);
                    items.push(Item::Call {
                        id: call["id"].as_str().unwrap_or_default().to_owned(),
                        name: call["function"]["name"].as_str().unwrap_or_default().to_owned(),
                        input,
                    });
                }
            }
            Some("tool") => items.push(Item::Output {
                id: message["tool_call_id"].as_str().unwrap_or_default().to_owned(),
                text: chat_text(&message["content"]),
                is_error: false,
            }),
            _ => {}
        }
    }
    items
}

/// aider's next reply: the edit blocks of the latest user message that holds a directive,
/// until aider says it applied them.
fn aider_step(body: &Value) -> Step {
    let messages: Vec<&Value> = body["messages"].as_array().into_iter().flatten().collect();
    let users: Vec<(usize, String)> =
        messages.iter().enumerate().filter(|(_, m)| m["role"] == "user").map(|(i, m)| (i, chat_text(&m["content"]))).collect();
    let directive = users.iter().rev().find(|(_, t)| Plan::parse(t) != Plan::default()).or(users.last());
    let Some((at, text)) = directive else { return Step::Final("done".into()) };
    let plan = Plan::parse(text);
    let final_text = plan.final_text.clone().unwrap_or_else(|| "done".into());
    let applied = users.iter().any(|(i, t)| *i > *at && (t.starts_with("I updated the files") || t.starts_with("I committed the changes")));
    if applied {
        return Step::Final(final_text);
    }
    let diff = messages.iter().any(|m| m["role"] == "system" && chat_text(&m["content"]).contains("SEARCH/REPLACE"));
    let mut writes: Vec<(&str, &str)> = Vec::new();
    let mut reply = format!("{final_text}\n\n");
    for action in plan.steps() {
        match action {
            Action::Write { path, content } => match writes.iter_mut().find(|(p, _)| p == path) {
                Some(w) => w.1 = content,
                None => writes.push((path, content)),
            },
            Action::Run(command) => reply.push_str(&format!("Run this:\n\n```bash\n{command}\n```\n\n")),
            Action::Fail(failure) => return Step::Fail(*failure),
            Action::Loop => {}
        }
    }
    for (path, content) in writes {
        let content = content.trim_end_matches('\n');
        if diff {
            // The file's content as aider showed it (a file added to the chat), else a new file.
            let shown = format!("{path}\n```\n");
            let old = messages.iter().filter(|m| m["role"] == "user").find_map(|m| {
                let text = chat_text(&m["content"]);
                let start = text.find(&shown)? + shown.len();
                let len = text[start..].find("```")?;
                Some(text[start..start + len].to_owned())
            });
            let old = old.unwrap_or_default();
            reply.push_str(&format!("{path}\n```\n<<<<<<< SEARCH\n{old}=======\n{content}\n>>>>>>> REPLACE\n```\n\n"));
        } else {
            reply.push_str(&format!("{path}\n```\n{content}\n```\n\n"));
        }
    }
    Step::Final(reply)
}

fn chat_error(status: u16) -> Value {
    let kind = if status < 500 { "invalid_request_error" } else { "server_error" };
    json!({ "error": { "message": format!("scripted failure ({status})"), "type": kind, "param": null, "code": null } })
}

fn chat_reply(body: &Value, config: &ModelConfig, shared: &Shared) -> Reply {
    let model = config.model.clone().or_else(|| body["model"].as_str().map(str::to_owned)).unwrap_or_else(|| "gpt-test".into());
    let (step, usage) = if has_tools(body) {
        let tools = Recorded { method: String::new(), path: String::new(), headers: Vec::new(), body: body.clone() }.tool_names();
        let patch = tools.iter().any(|t| t == "apply_patch") && !tools.iter().any(|t| t == "write");
        (next_step(&chat_items(body), Dialect::Opencode { patch }), config.chat_usage)
    } else if is_title_request(body) {
        (Step::Final("Scripted session".into()), ChatUsage { prompt: SIDE_TOKENS.0, completion: SIDE_TOKENS.1 })
    } else {
        (aider_step(body), config.chat_usage)
    };
    let stream = body["stream"] == true;
    let n = shared.next_id();
    let id = format!("chatcmpl-scripted-{n:06}");
    let usage = json!({
        "prompt_tokens": usage.prompt,
        "completion_tokens": usage.completion,
        "total_tokens": usage.prompt + usage.completion,
    });
    let (text, call) = match step {
        Step::Fail(Failure::Status(status)) => return Reply::Json(status, chat_error(status)),
        Step::Fail(Failure::Stream) if stream => return Reply::Sse(sse_data(&[chat_error(500)]) + "data: [DONE]\n\n"),
        Step::Fail(Failure::Stream) => return Reply::Json(500, chat_error(500)),
        Step::Final(text) => (Some(text), None),
        Step::Call { name, input } => (
            None,
            Some(json!({ "id": format!("call_scripted_{n:06}"), "type": "function",
                "function": { "name": name, "arguments": input.to_string() } })),
        ),
    };
    let finish = if call.is_some() { "tool_calls" } else { "stop" };
    if !stream {
        let mut message = json!({ "role": "assistant", "content": text });
        if let Some(call) = call {
            message["tool_calls"] = json!([call]);
        }
        return Reply::Json(
            200,
            json!({ "id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
                "choices": [{ "index": 0, "message": message, "finish_reason": finish }], "usage": usage }),
        );
    }
    let chunk = |choices: Value| json!({ "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": choices });
    let mut chunks = vec![chunk(json!([{ "index": 0, "delta": { "role": "assistant", "content": "" }, "finish_reason": null }]))];
    if let Some(text) = text {
        chunks.push(chunk(json!([{ "index": 0, "delta": { "content": text }, "finish_reason": null }])));
    }
    if let Some(mut call) = call {
        call["index"] = json!(0);
        chunks.push(chunk(json!([{ "index": 0, "delta": { "tool_calls": [call] }, "finish_reason": null }])));
    }
    chunks.push(chunk(json!([{ "index": 0, "delta": {}, "finish_reason": finish }])));
    if body["stream_options"]["include_usage"] == true {
        let mut last = chunk(json!([]));
        last["usage"] = usage;
        chunks.push(last);
    }
    Reply::Sse(sse_data(&chunks) + "data: [DONE]\n\n")
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
    fn gemini_writes_with_write_file_and_skips_its_session_context() {
        let mut body = json!({ "contents": [
            { "role": "user", "parts": [{ "text": "<session_context>\n@write no.txt x\n</session_context>" }, { "text": "@write a.txt hi\n@say ok" }] },
        ], "tools": [{ "functionDeclarations": [{ "name": "write_file" }] }] });
        let Step::Call { name: "write_file", input } = next_step(&gemini_items(&body), Dialect::Gemini) else { panic!("write") };
        assert_eq!(input, json!({ "file_path": "a.txt", "content": "hi" }));
        let contents = body["contents"].as_array_mut().expect("contents");
        contents.push(json!({ "role": "model", "parts": [{ "functionCall": { "id": "c1", "name": "write_file", "args": input } }] }));
        // A resumed session repeats the response: it still counts once.
        let response = json!({ "functionResponse": { "id": "c1", "name": "write_file", "response": { "output": "ok" } } });
        contents.push(json!({ "role": "user", "parts": [response, response] }));
        assert!(matches!(next_step(&gemini_items(&body), Dialect::Gemini), Step::Final(t) if t == "ok"));
        body["contents"].as_array_mut().expect("contents").push(json!({ "role": "user", "parts": [{ "text": "WANT b.txt=2" }] }));
        let Step::Call { name: "write_file", input } = next_step(&gemini_items(&body), Dialect::Gemini) else { panic!("want") };
        assert_eq!(input["file_path"], "b.txt");
        let Reply::Sse(text) = gemini_reply("m", "streamGenerateContent", &body, &ModelConfig::default()) else { panic!("sse") };
        assert!(text.starts_with("data: {") && text.contains("\"promptTokenCount\":1000"), "{text}");
        assert!(matches!(gemini_reply("m", "generateContent", &json!({ "contents": [] }), &ModelConfig::default()), Reply::Json(200, _)));
        let side = json!({ "contents": [], "generationConfig": { "responseJsonSchema": { "properties": { "complexity_score": {} } } } });
        assert!(gemini_side_text(&side).contains("\"complexity_score\":10"));
    }

    #[test]
    fn opencode_writes_with_its_own_tools() {
        let body = json!({ "messages": [
            { "role": "system", "content": "You are opencode" },
            { "role": "user", "content": "@write d/a.txt hi" },
            { "role": "assistant", "content": "", "tool_calls": [{ "id": "c1", "type": "function",
                "function": { "name": "write", "arguments": "{\"filePath\":\"d/a.txt\",\"content\":\"hi\"}" } }] },
            { "role": "tool", "tool_call_id": "c1", "content": "Wrote file successfully." },
            { "role": "user", "content": "@run make\nWANT b.txt=2" },
        ] });
        let Step::Call { name: "bash", input } = next_step(&chat_items(&body), Dialect::Opencode { patch: false }) else { panic!("bash") };
        assert_eq!(input["command"], "make");
        let items = vec![Item::Human("@write a.txt x\\ny".into())];
        let Step::Call { name: "apply_patch", input } = next_step(&items, Dialect::Opencode { patch: true }) else { panic!("patch") };
        assert_eq!(input["patchText"], "*** Begin Patch\n*** Add File: a.txt\n+x\n+y\n*** End Patch");
        assert!(is_title_request(&json!({ "messages": [{ "role": "system", "content": "You are a title generator." }] })));
    }

    #[test]
    fn aider_gets_edit_blocks_until_it_applied_them() {
        let mut body = json!({ "messages": [
            { "role": "system", "content": "Act as an expert software developer." },
            { "role": "user", "content": "Change the greeting" },
            { "role": "assistant", "content": "greet.py\n```\nx\n```\n" },
            { "role": "user", "content": "@write a.txt broken\n---\nQA:\nWANT a.txt=fixed\n   WANT b/c.txt=2\n@say fixed it\n\nTo suggest changes…" },
        ] });
        let Step::Final(reply) = aider_step(&body) else { panic!("a reply") };
        assert_eq!(reply, "fixed it\n\na.txt\n```\nfixed\n```\n\nb/c.txt\n```\n2\n```\n\n");
        // aider added a mentioned file instead of applying: the edits again.
        let messages = body["messages"].as_array_mut().expect("messages");
        messages.push(json!({ "role": "assistant", "content": reply }));
        messages.push(
            json!({ "role": "user", "content": "I added these files to the chat: a.txt\nLet me know if there are others we should add." }),
        );
        assert!(matches!(aider_step(&body), Step::Final(t) if t.contains("a.txt\n```\nfixed")));
        let messages = body["messages"].as_array_mut().expect("messages");
        messages.push(json!({ "role": "user", "content": "I updated the files." }));
        assert!(matches!(aider_step(&body), Step::Final(t) if t == "fixed it"));
        let diff = json!({ "messages": [
            { "role": "system", "content": "Use *SEARCH/REPLACE* blocks" },
            { "role": "user", "content": "I have *added these files to the chat*\n\na.txt\n```\nold\n```\n" },
            { "role": "user", "content": "@write a.txt new" },
        ] });
        assert!(
            matches!(aider_step(&diff), Step::Final(t) if t.contains("a.txt\n```\n<<<<<<< SEARCH\nold\n=======\nnew\n>>>>>>> REPLACE\n```"))
        );
        let fail = json!({ "messages": [{ "role": "user", "content": "@fail 400" }] });
        assert!(matches!(aider_step(&fail), Step::Fail(Failure::Status(400))));
    }

    #[test]
    fn codex_write_is_one_shell_command() {
        let items = vec![Item::Human("@write d/it's.txt a\\nb".into())];
        let Step::Call { name: "exec_command", input } = next_step(&items, Dialect::Codex) else { panic!("exec") };
        assert_eq!(input["cmd"], "mkdir -p 'd' && printf '%s' 'a\nb' > 'd/it'\\''s.txt'");
    }
}
