//! OpenAI Responses (`POST /v1/responses`), the protocol Codex speaks. Decoding turns input
//! items (with a stored previous response expanded in front) into the canonical chat request;
//! encoding builds the `response` object, or the event stream exactly as OpenAI sends it
//! (`event:` + `data:` with `type` and `sequence_number`, output items opened before their
//! deltas and closed after, `response.completed` / `.incomplete` / `.failed` last). To an
//! OpenAI upstream the client's body goes natively (reasoning items and encrypted content
//! survive); `store` is always false upstream, since Pura keeps stored responses itself.

use super::Frame;
use serde_json::{json, Map, Value};

use crate::api::chat::{FunctionCall, FunctionDef, Message, Role, Tool, ToolCall};
use crate::api::responses::{
    IncompleteDetails, ResponseError, ResponseObject, ResponsesRequest, ResponsesUsage,
};
use crate::api::{ChatRequest, Usage};
use crate::error::ApiError;
use crate::ids::{now_unix, random_alnum};
use crate::pipeline::relay::End;
use crate::providers::sse::SseEvent;
use crate::providers::{Dialect, NativeBody};

use super::Encoder;

/// Tool types that are not functions the client runs itself: no upstream here can run them.
fn refuse_builtin(tools: &[Value]) -> Result<(), ApiError> {
    let builtin: Vec<&str> = tools
        .iter()
        .filter_map(|t| t["type"].as_str())
        .filter(|k| !matches!(*k, "function" | "namespace"))
        .collect();
    if builtin.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_param(
        "tools",
        format!(
            "Built-in tools are not available through this gateway: {}. Send function tools only \
             (for Codex, set `web_search = \"disabled\"` in its config.toml).",
            builtin.join(", ")
        ),
    ))
}

/// A function tool, also inside a `namespace` (whose functions are offered by their own name).
fn chat_tools(tools: &[Value]) -> Vec<Tool> {
    let mut out = Vec::new();
    for t in tools {
        match t["type"].as_str() {
            Some("function") => out.extend(function_tool(t)),
            Some("namespace") => {
                let inner = t["tools"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                out.extend(inner.iter().filter_map(function_tool));
            }
            _ => {}
        }
    }
    out
}

fn function_tool(t: &Value) -> Option<Tool> {
    Some(Tool {
        kind: "function".into(),
        function: FunctionDef {
            name: t["name"].as_str()?.to_owned(),
            description: t["description"].as_str().map(str::to_owned),
            parameters: t.get("parameters").cloned(),
            strict: t["strict"].as_bool(),
        },
    })
}

fn message(role: Role, content: Option<Value>) -> Message {
    Message {
        role,
        content,
        name: None,
        tool_calls: None,
        tool_call_id: None,
        extra: Map::new(),
    }
}

/// Content of an input message as chat content: a string stays; parts become chat parts.
fn content(v: &Value) -> Result<Value, ApiError> {
    let Some(parts) = v.as_array() else {
        return Ok(v.clone());
    };
    let mut out = Vec::new();
    for p in parts {
        match p["type"].as_str().unwrap_or("") {
            "input_text" | "output_text" | "text" | "summary_text" => {
                out.push(json!({"type": "text", "text": p["text"].as_str().unwrap_or("")}))
            }
            "input_image" => {
                let url = p["image_url"].as_str().unwrap_or("");
                let detail = p["detail"].as_str().unwrap_or("auto");
                out.push(json!({"type": "image_url", "image_url": {"url": url, "detail": detail}}));
            }
            "refusal" => {
                out.push(json!({"type": "text", "text": p["refusal"].as_str().unwrap_or("")}))
            }
            other => {
                return Err(ApiError::bad_param(
                    "input",
                    format!("Unsupported content part `{other}` for a model behind this gateway."),
                ))
            }
        }
    }
    Ok(Value::Array(out))
}

fn role(s: &str) -> Result<Role, ApiError> {
    match s {
        "user" => Ok(Role::User),
        "assistant" => Ok(Role::Assistant),
        "system" => Ok(Role::System),
        "developer" => Ok(Role::Developer),
        other => Err(ApiError::bad_param(
            "input",
            format!("Unknown role `{other}`."),
        )),
    }
}

/// Adds a tool call to the assistant turn it belongs to (a new one unless the last message is
/// an assistant turn: a text answer followed by calls is one chat message).
fn push_call(messages: &mut Vec<Message>, call: ToolCall) {
    if let Some(last) = messages.last_mut().filter(|m| m.role == Role::Assistant) {
        last.tool_calls.get_or_insert_with(Vec::new).push(call);
        return;
    }
    let mut m = message(Role::Assistant, None);
    m.tool_calls = Some(vec![call]);
    messages.push(m);
}

/// Input items (a string is one user message) as chat messages. Reasoning items are the
/// upstream's own and only travel natively.
pub fn items_to_messages(input: &Value, out: &mut Vec<Message>) -> Result<(), ApiError> {
    let items = match input {
        Value::String(s) => {
            out.push(message(Role::User, Some(Value::String(s.clone()))));
            return Ok(());
        }
        Value::Array(items) => items,
        Value::Null => return Ok(()),
        _ => {
            return Err(ApiError::bad_param(
                "input",
                "`input` must be a string or an array of items.",
            ))
        }
    };
    for item in items {
        match item["type"].as_str().unwrap_or("message") {
            "message" => {
                let r = role(item["role"].as_str().unwrap_or("user"))?;
                out.push(message(r, Some(content(&item["content"])?)));
            }
            "function_call" => push_call(
                out,
                ToolCall {
                    id: item["call_id"].as_str().unwrap_or_default().to_owned(),
                    kind: "function".into(),
                    function: FunctionCall {
                        name: item["name"].as_str().unwrap_or_default().to_owned(),
                        arguments: item["arguments"].as_str().unwrap_or_default().to_owned(),
                    },
                },
            ),
            "function_call_output" => {
                let output = match &item["output"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let mut m = message(Role::Tool, Some(Value::String(output)));
                m.tool_call_id = item["call_id"].as_str().map(str::to_owned);
                out.push(m);
            }
            "reasoning" | "item_reference" => {}
            other => {
                return Err(ApiError::bad_param(
                    "input",
                    format!(
                        "Input items of type `{other}` are not supported through this gateway."
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// The canonical chat request of a Responses request; `history` is the stored conversation
/// of `previous_response_id` (its input and output items), already expanded.
pub fn decode(req: &ResponsesRequest, history: &[Value]) -> Result<ChatRequest, ApiError> {
    let tools = req.tools.as_deref().unwrap_or(&[]);
    refuse_builtin(tools)?;
    let mut messages = Vec::new();
    if let Some(i) = req.instructions.as_deref().filter(|i| !i.is_empty()) {
        messages.push(message(Role::System, Some(Value::String(i.to_owned()))));
    }
    items_to_messages(&Value::Array(history.to_vec()), &mut messages)?;
    items_to_messages(req.input.as_ref().unwrap_or(&Value::Null), &mut messages)?;
    if messages.iter().all(|m| m.role == Role::System) {
        return Err(ApiError::bad_param(
            "input",
            "`input` must contain at least one item.",
        ));
    }
    let tools = chat_tools(tools);
    let tool_choice = req.tool_choice.as_ref().map(|c| match c {
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            json!({"type": "function", "function": {"name": o.get("name").cloned().unwrap_or(Value::Null)}})
        }
        other => other.clone(),
    });
    let response_format = req
        .text
        .as_ref()
        .and_then(|t| t.get("format"))
        .and_then(|f| match f["type"].as_str()? {
            "json_schema" => Some(json!({"type": "json_schema", "json_schema": {
                "name": f["name"], "schema": f["schema"], "strict": f["strict"]}})),
            "json_object" => Some(json!({"type": "json_object"})),
            _ => None,
        });
    Ok(ChatRequest {
        model: req.model.clone(),
        messages,
        stream: req.stream,
        stream_options: None,
        max_tokens: req.max_output_tokens,
        max_completion_tokens: None,
        temperature: req.temperature,
        top_p: req.top_p,
        n: None,
        stop: None,
        tool_choice: if tools.is_empty() { None } else { tool_choice },
        tools: (!tools.is_empty()).then_some(tools),
        parallel_tool_calls: req.parallel_tool_calls,
        response_format,
        user: None,
        // Stored responses are Pura's own (see `native`), never the upstream's.
        store: None,
        service_tier: req.service_tier.clone(),
        extra: Map::new(),
    })
}

/// The body an OpenAI upstream gets natively: the client's, with the stored history in
/// front of `input` instead of `previous_response_id`, and `store` off.
pub fn native(mut body: Map<String, Value>, history: Vec<Value>) -> NativeBody {
    if !history.is_empty() {
        let mut input = history;
        match body.remove("input") {
            Some(Value::String(s)) => input.push(json!({"role": "user", "content": s})),
            Some(Value::Array(items)) => input.extend(items),
            _ => {}
        }
        body.insert("input".into(), Value::Array(input));
    }
    body.remove("previous_response_id");
    body.insert("store".into(), Value::Bool(false));
    NativeBody {
        dialect: Dialect::Openai,
        body,
        headers: Vec::new(),
        end_user: String::new(),
    }
}

/// What the response object echoes of the request.
#[derive(Clone)]
pub struct Echo {
    pub id: String,
    pub created_at: i64,
    pub model: String,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub reasoning: Value,
    pub store: bool,
    pub temperature: Option<f64>,
    pub text: Value,
    pub tool_choice: Value,
    pub tools: Vec<Value>,
    pub top_p: Option<f64>,
    pub metadata: Map<String, Value>,
}

impl Echo {
    pub fn new(req: &ResponsesRequest) -> Echo {
        Echo {
            id: format!("resp_{}", random_alnum(40)),
            created_at: now_unix(),
            model: req.model.clone().unwrap_or_default(),
            instructions: req.instructions.clone(),
            max_output_tokens: req.max_output_tokens,
            parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
            previous_response_id: req.previous_response_id.clone(),
            reasoning: req
                .reasoning
                .clone()
                .unwrap_or(json!({"effort": null, "summary": null})),
            store: req.store.unwrap_or(true),
            temperature: req.temperature,
            text: req
                .text
                .clone()
                .unwrap_or(json!({"format": {"type": "text"}})),
            tool_choice: req.tool_choice.clone().unwrap_or(json!("auto")),
            tools: req.tools.clone().unwrap_or_default(),
            top_p: req.top_p,
            metadata: req.metadata.clone().unwrap_or_default(),
        }
    }

    /// The response object in a given state.
    pub fn object(
        &self,
        status: &'static str,
        output: Vec<Value>,
        usage: Option<&Usage>,
    ) -> ResponseObject {
        ResponseObject {
            id: self.id.clone(),
            object: "response",
            created_at: self.created_at,
            status,
            completed_at: (status == "completed").then(now_unix),
            error: None,
            incomplete_details: (status == "incomplete").then(|| IncompleteDetails {
                reason: "max_output_tokens".into(),
            }),
            instructions: self.instructions.clone(),
            max_output_tokens: self.max_output_tokens,
            model: self.model.clone(),
            output,
            parallel_tool_calls: self.parallel_tool_calls,
            previous_response_id: self.previous_response_id.clone(),
            reasoning: self.reasoning.clone(),
            store: self.store,
            temperature: self.temperature,
            text: self.text.clone(),
            tool_choice: self.tool_choice.clone(),
            tools: self.tools.clone(),
            top_p: self.top_p,
            truncation: "disabled",
            usage: usage.map(ResponsesUsage::from),
            user: None,
            metadata: self.metadata.clone(),
            x_pura: None,
        }
    }
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"id": id, "type": "message", "status": status, "role": "assistant",
           "content": if status == "in_progress" && text.is_empty() { json!([]) } else {
               json!([{"type": "output_text", "text": text, "annotations": []}]) }})
}

fn call_item(id: &str, call_id: &str, name: &str, args: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
           "arguments": args, "status": status})
}

fn reasoning_item(id: &str, summary: &str) -> Value {
    let summary = if summary.is_empty() {
        json!([])
    } else {
        json!([{"type": "summary_text", "text": summary}])
    };
    json!({"id": id, "type": "reasoning", "summary": summary})
}

/// The JSON answer: a native response object as the upstream sent it, or a canonical
/// `chat.completion` encoded as one.
pub fn encode_json(
    echo: &Echo,
    completion: crate::providers::Completion,
) -> Result<Value, ApiError> {
    let usage = completion.usage.unwrap_or_default();
    if let (true, Some(raw)) = (completion.native, &completion.raw) {
        return serde_json::from_slice(raw).map_err(ApiError::internal);
    }
    let chat: Value = match completion.raw {
        Some(raw) => serde_json::from_slice(&raw).map_err(ApiError::internal)?,
        None => completion.body,
    };
    serde_json::to_value(from_completion(echo, &chat, &usage)).map_err(ApiError::internal)
}

/// The stored conversation a `previous_response_id` continues; another key's id is a 404.
pub async fn history(
    pool: &crate::db::Pool,
    key_id: &str,
    id: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let Some(id) = id else {
        return Ok(Vec::new());
    };
    let (k, i) = (key_id.to_owned(), id.to_owned());
    let found = crate::db::run(pool, move |c| crate::db::models::response::find(c, &i, &k)).await?;
    let Some(row) = found else {
        return Err(ApiError::NotFoundCode {
            message: format!("Previous response with id '{id}' not found."),
            param: Some("previous_response_id"),
            code: "previous_response_not_found",
        });
    };
    serde_json::from_str(&row.items).map_err(ApiError::internal)
}

/// A canonical `chat.completion` as a response object.
pub fn from_completion(echo: &Echo, chat: &Value, usage: &Usage) -> ResponseObject {
    let msg = &chat["choices"][0]["message"];
    let mut output = Vec::new();
    if let Some(r) = msg["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
        output.push(reasoning_item(&format!("rs_{}", random_alnum(24)), r));
    }
    if let Some(text) = msg["content"].as_str().filter(|t| !t.is_empty()) {
        output.push(message_item(
            &format!("msg_{}", random_alnum(24)),
            text,
            "completed",
        ));
    }
    for call in msg["tool_calls"].as_array().into_iter().flatten() {
        output.push(call_item(
            &format!("fc_{}", random_alnum(24)),
            call["id"].as_str().unwrap_or_default(),
            call["function"]["name"].as_str().unwrap_or_default(),
            call["function"]["arguments"].as_str().unwrap_or_default(),
            "completed",
        ));
    }
    let status = match chat["choices"][0]["finish_reason"].as_str() {
        Some("length") => "incomplete",
        _ => "completed",
    };
    echo.object(status, output, Some(usage))
}

/// One output item being streamed.
enum Open {
    Text {
        id: String,
        text: String,
    },
    Reasoning {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        args: String,
        index: u64,
    },
}

/// Canonical chunks → the Responses event stream.
pub struct ResponsesEncoder {
    echo: Echo,
    seq: u64,
    started: bool,
    open: Option<Open>,
    done_items: Vec<Value>,
    finish: Option<String>,
    /// A native stream's terminal event, held until the end is settled (and stored).
    native_terminal: Option<SseEvent>,
    /// The final response object, for storing (`store: true`).
    final_response: Option<Value>,
    store: Option<Store>,
}

/// Where a `store: true` response goes, with the conversation it continues.
pub struct Store {
    pub pool: crate::db::Pool,
    pub key_id: String,
    /// Input items so far (the previous conversation and this request's input).
    pub conversation: Vec<Value>,
    pub retention: std::time::Duration,
}

impl Store {
    /// Stores `response` (a response object) under its id; failures are logged, not fatal:
    /// the client has its answer, only a later `previous_response_id` would miss it.
    pub async fn save(self, response: Value) {
        let Some(id) = response["id"].as_str().map(str::to_owned) else {
            return;
        };
        let mut items = self.conversation;
        items.extend(response["output"].as_array().cloned().unwrap_or_default());
        let now = crate::time::now();
        let row = crate::db::models::response::StoredResponse {
            id,
            key_id: self.key_id,
            created_at: now,
            items: Value::Array(items).to_string(),
            response: response.to_string(),
        };
        let cutoff =
            now - chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::days(30));
        let saved = crate::db::run(&self.pool, move |c| {
            crate::db::models::response::insert(c, &row, cutoff)
        })
        .await;
        if let Err(e) = saved {
            log::warn!("a stored response was not saved: {e}");
        }
    }
}

/// Input items as stored: a string input is one user message item.
pub fn input_items(input: Option<&Value>) -> Vec<Value> {
    match input {
        Some(Value::String(s)) => vec![json!({"type": "message", "role": "user", "content": s})],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

impl ResponsesEncoder {
    pub fn new(echo: Echo) -> Self {
        ResponsesEncoder {
            echo,
            seq: 0,
            started: false,
            open: None,
            done_items: Vec::new(),
            finish: None,
            native_terminal: None,
            final_response: None,
            store: None,
        }
    }

    /// Store the final response when the stream ends (`store: true`).
    pub fn storing(mut self, store: Option<Store>) -> Self {
        self.store = store;
        self
    }

    fn emit(&mut self, out: &mut Vec<Frame>, kind: &str, mut body: Value) {
        body["type"] = json!(kind);
        body["sequence_number"] = json!(self.seq);
        self.seq += 1;
        // serde_json::to_string, not Display, which writes the same text through a formatter.
        let text = serde_json::to_string(&body).unwrap_or_default();
        out.push(Frame::named(kind, &text));
    }

    fn start(&mut self, out: &mut Vec<Frame>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = serde_json::to_value(self.echo.object("in_progress", Vec::new(), None))
            .unwrap_or_default();
        self.emit(out, "response.created", json!({"response": r.clone()}));
        self.emit(out, "response.in_progress", json!({"response": r}));
    }

    fn index(&self) -> usize {
        self.done_items.len()
    }

    fn close(&mut self, out: &mut Vec<Frame>) {
        let Some(open) = self.open.take() else { return };
        let i = self.index();
        let item = match open {
            Open::Text { id, text } => {
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                self.emit(out, "response.output_text.done", json!({"item_id": id, "output_index": i, "content_index": 0, "text": text, "logprobs": []}));
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": i, "content_index": 0, "part": part}),
                );
                message_item(&id, &text, "completed")
            }
            Open::Reasoning { id, text } => {
                let part = json!({"type": "summary_text", "text": text});
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": i, "summary_index": 0, "text": text}),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": i, "summary_index": 0, "part": part}),
                );
                reasoning_item(&id, &text)
            }
            Open::Call {
                id,
                call_id,
                name,
                args,
                ..
            } => {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": i, "name": name, "arguments": args}),
                );
                call_item(&id, &call_id, &name, &args, "completed")
            }
        };
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": i, "item": item}),
        );
        self.done_items.push(item);
    }

    fn text(&mut self, delta: &str, out: &mut Vec<Frame>) {
        if !matches!(self.open, Some(Open::Text { .. })) {
            self.close(out);
            let id = format!("msg_{}", random_alnum(24));
            let i = self.index();
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": i, "item": message_item(&id, "", "in_progress")}),
            );
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": i, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []}}),
            );
            self.open = Some(Open::Text {
                id,
                text: String::new(),
            });
        }
        let i = self.index();
        if let Some(Open::Text { id, text }) = &mut self.open {
            text.push_str(delta);
            let id = id.clone();
            self.emit(out, "response.output_text.delta", json!({"item_id": id, "output_index": i, "content_index": 0, "delta": delta, "logprobs": []}));
        }
    }

    fn reasoning(&mut self, delta: &str, out: &mut Vec<Frame>) {
        if !matches!(self.open, Some(Open::Reasoning { .. })) {
            self.close(out);
            let id = format!("rs_{}", random_alnum(24));
            let i = self.index();
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": i, "item": reasoning_item(&id, "")}),
            );
            self.emit(
                out,
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": i, "summary_index": 0,
                "part": {"type": "summary_text", "text": ""}}),
            );
            self.open = Some(Open::Reasoning {
                id,
                text: String::new(),
            });
        }
        let i = self.index();
        if let Some(Open::Reasoning { id, text }) = &mut self.open {
            text.push_str(delta);
            let id = id.clone();
            self.emit(
                out,
                "response.reasoning_summary_text.delta",
                json!({"item_id": id, "output_index": i, "summary_index": 0, "delta": delta}),
            );
        }
    }

    fn call(&mut self, tc: &Value, out: &mut Vec<Frame>) {
        let index = tc["index"].as_u64().unwrap_or(0);
        let same = matches!(&self.open, Some(Open::Call { index: k, .. }) if *k == index);
        if !same {
            self.close(out);
            let id = format!("fc_{}", random_alnum(24));
            let call_id = tc["id"]
                .as_str()
                .map_or_else(crate::ids::call_id, str::to_owned);
            let name = tc["function"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let i = self.index();
            self.emit(out, "response.output_item.added", json!({"output_index": i, "item": call_item(&id, &call_id, &name, "", "in_progress")}));
            self.open = Some(Open::Call {
                id,
                call_id,
                name,
                args: String::new(),
                index,
            });
        }
        let delta = tc["function"]["arguments"].as_str().unwrap_or_default();
        if delta.is_empty() {
            return;
        }
        let i = self.index();
        if let Some(Open::Call { id, args, .. }) = &mut self.open {
            args.push_str(delta);
            let id = id.clone();
            self.emit(
                out,
                "response.function_call_arguments.delta",
                json!({"item_id": id, "output_index": i, "delta": delta}),
            );
        }
    }
}

impl Encoder for ResponsesEncoder {
    fn chunk(&mut self, chunk: Value, out: &mut Vec<Frame>) {
        self.start(out);
        let choice = &chunk["choices"][0];
        let delta = &choice["delta"];
        for key in ["reasoning_content", "reasoning"] {
            if let Some(r) = delta[key].as_str().filter(|r| !r.is_empty()) {
                self.reasoning(r, out);
            }
        }
        if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text(t, out);
        }
        for tc in delta["tool_calls"].as_array().into_iter().flatten() {
            self.call(tc, out);
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_owned());
        }
    }

    fn native(&mut self, event: SseEvent, out: &mut Vec<Frame>) {
        // The upstream announced the response itself: a cut stream's `response.failed` must
        // not announce it a second time.
        self.started = true;
        let kind = event.event.as_deref().unwrap_or("");
        let kind = match kind {
            "" => serde_json::from_str::<Value>(&event.data)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_owned))
                .unwrap_or_default(),
            k => k.to_owned(),
        };
        if matches!(
            kind.as_str(),
            "response.completed" | "response.incomplete" | "response.failed"
        ) {
            if let Ok(v) = serde_json::from_str::<Value>(&event.data) {
                self.final_response = Some(v["response"].clone());
            }
            self.native_terminal = Some(event);
            return;
        }
        out.push(super::native_event(event));
    }

    fn after_end(&mut self) -> Option<futures_util::future::LocalBoxFuture<'static, ()>> {
        let store = self.store.take()?;
        let response = self.final_response.take()?;
        Some(Box::pin(store.save(response)))
    }

    fn end(&mut self, end: End, out: &mut Vec<Frame>) {
        if let Some(mut terminal) = self.native_terminal.take() {
            // The upstream's own terminal event, with Pura's final cost added to its response
            // (as every protocol's last event carries it; SDKs ignore the extra field).
            if let Ok(mut v) = serde_json::from_str::<Value>(&terminal.data) {
                if let Some(r) = v.get_mut("response").and_then(Value::as_object_mut) {
                    r.insert(
                        "x_pura".into(),
                        serde_json::to_value(&end.x_pura).unwrap_or_default(),
                    );
                    self.final_response = Some(Value::Object(r.clone()));
                }
                terminal.data = v.to_string();
            }
            out.push(super::native_event(terminal));
            return;
        }
        self.start(out);
        self.close(out);
        let output = std::mem::take(&mut self.done_items);
        let x_pura = serde_json::to_value(&end.x_pura).ok();
        if let Some(err) = &end.error {
            let mut r = self.echo.object("failed", output, Some(&end.usage));
            r.error = Some(ResponseError {
                code: "server_error".into(),
                message: err.to_string(),
            });
            r.x_pura = x_pura;
            let v = serde_json::to_value(r).unwrap_or_default();
            self.emit(out, "response.failed", json!({"response": v}));
            return;
        }
        let (kind, status) = match self.finish.as_deref() {
            Some("length") => ("response.incomplete", "incomplete"),
            _ => ("response.completed", "completed"),
        };
        let mut r = self.echo.object(status, output, Some(&end.usage));
        r.x_pura = x_pura;
        let v = serde_json::to_value(r).unwrap_or_default();
        self.final_response = Some(v.clone());
        self.emit(out, kind, json!({"response": v}));
    }
}
