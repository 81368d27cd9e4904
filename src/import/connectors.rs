//! Connector calls of an export mapped to coflow's connector operations: the Salesforce connector
//! (`shared_salesforce` in Power Automate, `salesforce` API connections in Logic Apps), the
//! Partner Center connectors (`shared_partnercenterref`, `partnercenterevents`) and plain HTTP
//! calls to the Partner Center APIs. What has no counterpart is refused with the reason.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::definition::{translate_json, translate_text};

/// A call mapped to a coflow operation.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Mapped {
    /// `salesforce` or `partner_center`.
    pub connector: &'static str,
    /// The operation, e.g. `create_record`.
    pub operation: &'static str,
    /// The operation's inputs, translated.
    pub inputs: Map<String, Value>,
    /// Differences from the source worth knowing.
    pub notes: Vec<String>,
    /// Properties of the action's body that coflow names differently: (source, coflow).
    pub renames: Vec<(&'static str, &'static str)>,
}

impl Mapped {
    fn new(connector: &'static str, operation: &'static str) -> Self {
        Mapped { connector, operation, inputs: Map::new(), notes: Vec::new(), renames: Vec::new() }
    }

    fn input(mut self, key: &str, value: Value) -> Self {
        self.inputs.insert(key.to_string(), value);
        self
    }

    fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    fn renamed(mut self, from: &'static str, to: &'static str) -> Self {
        self.renames.push((from, to));
        self
    }
}

/// A mapping, or why there is none.
pub(super) type Mapping = Result<Mapped, String>;

/// Polling settings of a `salesforce.poll` trigger.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PollTrigger {
    /// `object`, `on`, `where`: the trigger's settings (without `every`).
    pub settings: Map<String, Value>,
    /// Differences worth knowing.
    pub notes: Vec<String>,
}

/// The connector an action's `host` names, as its API name (`shared_salesforce`).
pub(super) fn api_name(inputs: &Value, references: &Map<String, Value>) -> Option<String> {
    static LA_CONNECTION: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"'\$connections'[)\]]\['([^']+)'\]").expect("valid regex"));
    let host = inputs.get("host")?;
    if let Some(api) = host.get("apiId").and_then(Value::as_str) {
        return api.rsplit('/').next().map(str::to_string);
    }
    if let Some(name) = host.get("connectionName").and_then(Value::as_str) {
        let reference = references.get(name);
        let api = reference
            .and_then(|r| r.pointer("/api/name").or_else(|| r.get("apiName")))
            .and_then(Value::as_str)
            .or_else(|| reference.and_then(|r| r.get("id")).and_then(Value::as_str))
            .map(|id| id.rsplit('/').next().unwrap_or(id).to_string());
        return Some(api.unwrap_or_else(|| name.to_string()));
    }
    if let Some(reference) = host.pointer("/connection/referenceName").and_then(Value::as_str) {
        // Logic Apps Standard names an entry of connections.json, which the workflow file does
        // not carry; the designer names those entries after their API (`salesforce`,
        // `salesforce-2`).
        return Some(reference.to_string());
    }
    let connection = host.pointer("/connection/name").and_then(Value::as_str)?;
    let key = LA_CONNECTION.captures(connection).and_then(|c| c.get(1)).map(|m| m.as_str())?;
    Some(key.to_string())
}

/// Which coflow connector an API name stands for.
fn family(api: &str) -> &str {
    static NUMBERED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[-_]\d+$").expect("valid regex"));
    let lower = api.to_ascii_lowercase();
    let bare = lower.strip_prefix("shared_").unwrap_or(&lower);
    match NUMBERED.replace(bare, "").as_ref() {
        "salesforce" => "salesforce",
        "partnercenterref" => "partnercenterref",
        "partnercenterevents" => "partnercenterevents",
        _ => "other",
    }
}

/// `PostItem_V2`, `PatchItemV3` → `postitem`, `patchitem`: versions of one operation take the
/// same parameters for what coflow needs.
fn base_operation(operation: &str) -> String {
    static VERSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"_?[Vv]\d+$").expect("valid regex"));
    VERSION.replace(operation, "").to_ascii_lowercase()
}

/// An `OpenApiConnection` action (Power Automate).
pub(super) fn open_api_action(inputs: &Value, references: &Map<String, Value>) -> Mapping {
    let api = api_name(inputs, references).ok_or("the action's `host` names no connector")?;
    let operation = inputs.pointer("/host/operationId").and_then(Value::as_str).unwrap_or_default();
    let params = unflatten(inputs.get("parameters"));
    match family(&api) {
        "salesforce" => salesforce(operation, &params),
        "partnercenterref" => partner_center_referrals(operation, &params),
        "partnercenterevents" => partner_center_events(operation, &params),
        _ => Err(no_equivalent(&api, operation)),
    }
}

/// An `ApiConnection` action (Logic Apps): `method` and `path` on the managed API.
pub(super) fn api_connection_action(inputs: &Value, references: &Map<String, Value>) -> Mapping {
    let api = api_name(inputs, references).ok_or("the action's `host` names no connection")?;
    let method = inputs.get("method").and_then(Value::as_str).unwrap_or("get").to_ascii_uppercase();
    let path = inputs.get("path").and_then(Value::as_str).unwrap_or_default();
    if family(&api) != "salesforce" {
        return Err(no_equivalent(&api, &format!("{method} {path}")));
    }
    let (operation, params) = logic_apps_salesforce(&method, path, inputs)
        .ok_or_else(|| format!("the Salesforce call `{method} {path}` has no coflow operation"))?;
    salesforce(operation, &params)
}

fn no_equivalent(api: &str, operation: &str) -> String {
    format!("connector `{api}` (operation `{operation}`) has no coflow equivalent")
}

/// `{"item/Name": x}` → `{"item": {"Name": x}}`: the designer writes body properties as paths.
fn unflatten(parameters: Option<&Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(Value::Object(parameters)) = parameters else { return out };
    for (key, value) in parameters {
        let mut steps = key.split('/').filter(|s| !s.is_empty()).peekable();
        let mut node = &mut out;
        while let Some(step) = steps.next() {
            if steps.peek().is_none() {
                node.insert(step.to_string(), value.clone());
                break;
            }
            let child = node.entry(step.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            let Value::Object(next) = child else { break };
            node = next;
        }
    }
    out
}

fn required(params: &Map<String, Value>, key: &str) -> Result<Value, String> {
    let value = params.get(key).ok_or_else(|| format!("parameter `{key}` is missing"))?;
    translate_json(value)
}

// ---- Salesforce ------------------------------------------------------------------------------

fn salesforce(operation: &str, params: &Map<String, Value>) -> Mapping {
    let sf = |op| Mapped::new("salesforce", op);
    let record = || params.get("item").map_or(Ok(Value::Object(Map::new())), translate_json);
    let returns_id = "coflow answers {id, success, errors}: `Id` in its outputs now reads `id`, and other fields of the record are not returned";
    match base_operation(operation).as_str() {
        "getitem" => Ok(sf("get_record")
            .input("sobject", required(params, "table")?)
            .input("id", required(params, "id")?)),
        "postitem" | "createitem" => Ok(sf("create_record")
            .input("sobject", required(params, "table")?)
            .input("record", record()?)
            .note(returns_id)
            .renamed("Id", "id")),
        "patchitem" | "updateitem" => Ok(sf("update_record")
            .input("sobject", required(params, "table")?)
            .input("id", required(params, "id")?)
            .input("record", record()?)
            .note(returns_id)
            .renamed("Id", "id")),
        "deleteitem" => Ok(sf("delete_record")
            .input("sobject", required(params, "table")?)
            .input("id", required(params, "id")?)),
        "patchitembyexternalid" | "upsertitem" => Ok(sf("upsert_record")
            .input("sobject", required(params, "table")?)
            .input("external_id_field", required(params, "externalIdField")?)
            .input("external_id", required(params, "externalId")?)
            .input("record", record()?)),
        "getitems" => get_items(params),
        "executesoqlquery" => {
            let query = match params.get("query") {
                Some(Value::Object(body)) => body.get("query").cloned(),
                other => other.cloned(),
            };
            let query = query.ok_or("parameter `query` is missing")?;
            if params.get("query").and_then(|q| q.get("parameters")).is_some() {
                return Err("SOQL query parameters (`@name`) are not supported: write the values into the query with soql_quote()".into());
            }
            Ok(sf("query").input("soql", translate_json(&query)?))
        }
        _ => Err(format!(
            "Salesforce operation `{operation}` has no coflow equivalent (coflow offers get_record, create_record, update_record, upsert_record, delete_record and query)"
        )),
    }
}

/// "Get records" becomes a SOQL query built from its OData options.
fn get_items(params: &Map<String, Value>) -> Mapping {
    let table = params.get("table").ok_or("parameter `table` is missing")?;
    let mut notes =
        vec!["\"Get records\" became a SOQL query; its outputs' `value` now reads `records`".to_string()];
    let top = params.get("$top").and_then(number);
    let fields = match params.get("$select") {
        Some(select) => piece(select),
        None => {
            notes.push("no `$select`: the query reads FIELDS(ALL), which Salesforce allows for at most 200 records; name the fields to read more".into());
            "FIELDS(ALL)".into()
        }
    };
    let mut soql = format!("SELECT {fields} FROM {}", piece(table));
    if let Some(filter) = params.get("$filter") {
        let (condition, note) = odata_filter(filter);
        notes.extend(note);
        soql.push_str(&format!(" WHERE {condition}"));
    }
    if let Some(order) = params.get("$orderby").and_then(Value::as_str) {
        soql.push_str(&format!(" ORDER BY {}", odata_order(order)));
    }
    let limit = match (top, fields == "FIELDS(ALL)") {
        (Some(top), true) => Some(top.min(200)),
        (None, true) => Some(200),
        (top, false) => top,
    };
    if let Some(limit) = limit {
        soql.push_str(&format!(" LIMIT {limit}"));
    }
    if let Some(skip) = params.get("$skip").and_then(number) {
        soql.push_str(&format!(" OFFSET {skip}"));
    }
    let mut mapped = Mapped::new("salesforce", "query")
        .input("soql", Value::String(translate_text(&soql)?))
        .renamed("value", "records");
    mapped.notes = notes;
    Ok(mapped)
}

fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A parameter as a piece of text to splice into a larger value: `@x` becomes `@{x}`.
fn piece(value: &Value) -> String {
    match value {
        Value::String(s) if s.starts_with('@') && !s.starts_with("@{") && !s.starts_with("@@") => {
            format!("@{{{}}}", &s[1..])
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An OData `$filter` as a SOQL condition, with a note when it may need a look.
fn odata_filter(filter: &Value) -> (String, Option<String>) {
    let raw = piece(filter);
    if matches!(filter, Value::String(s) if s.starts_with('@') && !s.starts_with("@{") && !s.starts_with("@@"))
    {
        return (raw, Some("the `$filter` is an expression: it must now yield a SOQL condition".into()));
    }
    let (converted, functions) = odata_to_soql(&raw);
    let note = functions.then(|| {
        "the `$filter` uses OData functions (startswith, contains, ...): rewrite them in SOQL (LIKE)"
            .to_string()
    });
    (converted, note)
}

/// `Name eq 'x' and Amount gt 5` → `Name = 'x' AND Amount > 5`, leaving quoted text and
/// `@{…}` expressions alone. Also says whether OData functions were seen.
pub(super) fn odata_to_soql(filter: &str) -> (String, bool) {
    let mut out = String::with_capacity(filter.len());
    let mut word = String::new();
    let mut functions = false;
    let flush = |word: &mut String, out: &mut String| {
        let soql = match word.to_ascii_lowercase().as_str() {
            "eq" => "=",
            "ne" => "!=",
            "gt" => ">",
            "ge" => ">=",
            "lt" => "<",
            "le" => "<=",
            "and" => "AND",
            "or" => "OR",
            "not" => "NOT",
            _ => word.as_str(),
        }
        .to_string();
        out.push_str(&soql);
        word.clear();
    };
    for segment in Segments::new(filter) {
        match segment {
            Segment::Plain(text) => {
                for c in text.chars() {
                    if c.is_alphanumeric() || c == '_' || c == '.' {
                        word.push(c);
                        continue;
                    }
                    if c == '('
                        && matches!(
                            word.to_ascii_lowercase().as_str(),
                            "startswith" | "endswith" | "contains" | "substringof"
                        )
                    {
                        functions = true;
                    }
                    flush(&mut word, &mut out);
                    out.push(c);
                }
            }
            Segment::Kept(text) => {
                flush(&mut word, &mut out);
                out.push_str(text);
            }
        }
    }
    flush(&mut word, &mut out);
    (out, functions)
}

/// `Name desc,CreatedDate` → `Name DESC, CreatedDate`.
fn odata_order(order: &str) -> String {
    let items: Vec<String> = order
        .split(',')
        .map(|item| {
            let mut words: Vec<&str> = item.split_whitespace().collect();
            let direction = match words.last().map(|w| w.to_ascii_lowercase()) {
                Some(d) if d == "desc" || d == "asc" => {
                    words.pop();
                    format!(" {}", d.to_ascii_uppercase())
                }
                _ => String::new(),
            };
            format!("{}{direction}", words.join(" "))
        })
        .filter(|item| !item.trim().is_empty())
        .collect();
    items.join(", ")
}

/// Pieces of a Power Automate text: plain text, or a quoted string / `@{…}` expression that
/// must be kept as it is.
enum Segment<'a> {
    Plain(&'a str),
    Kept(&'a str),
}

struct Segments<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Segments<'a> {
    fn new(text: &'a str) -> Self {
        Segments { text, pos: 0 }
    }

    /// Byte length of the kept piece starting at `start` (a `'` or `@{`).
    fn kept_len(&self, start: usize) -> usize {
        let rest = &self.text[start..];
        if rest.starts_with('\'') {
            return quoted_len(rest);
        }
        let mut depth = 0usize;
        let mut i = 0;
        let bytes = rest.as_bytes();
        while i < bytes.len() {
            match bytes[i] {
                b'\'' => {
                    i += quoted_len(&rest[i..]);
                    continue;
                }
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        rest.len()
    }
}

/// Length of a `'…'` literal with `''` for a quote (the whole rest when unclosed).
fn quoted_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    text.len()
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        if self.pos >= self.text.len() {
            return None;
        }
        let rest = &self.text[self.pos..];
        let starts_kept = |s: &str| s.starts_with('\'') || s.starts_with("@{");
        if starts_kept(rest) {
            let len = self.kept_len(self.pos);
            let piece = &rest[..len];
            self.pos += len;
            return Some(Segment::Kept(piece));
        }
        let end = rest
            .char_indices()
            .find(|(i, _)| *i > 0 && starts_kept(&rest[*i..]))
            .map_or(rest.len(), |(i, _)| i);
        self.pos += end;
        Some(Segment::Plain(&rest[..end]))
    }
}

/// Splits `text` at `separator`, except inside quoted text and `@{…}` expressions.
fn split_outside(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    for segment in Segments::new(text) {
        match segment {
            Segment::Kept(kept) => parts.last_mut().map(|p| p.push_str(kept)).unwrap_or_default(),
            Segment::Plain(plain) => {
                for c in plain.chars() {
                    if c == separator {
                        parts.push(String::new());
                    } else if let Some(last) = parts.last_mut() {
                        last.push(c);
                    }
                }
            }
        }
    }
    parts
}

/// A Logic Apps Salesforce call (`/datasets/default/tables/{table}/items/{id}`, ...) as the
/// Power Automate operation and parameters it stands for.
fn logic_apps_salesforce(
    method: &str,
    path: &str,
    inputs: &Value,
) -> Option<(&'static str, Map<String, Value>)> {
    let segments: Vec<String> =
        split_outside(path, '/').into_iter().filter(|s| !s.is_empty()).map(|s| unwrap_encoded(&s)).collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let start =
        usize::from(lower.first().is_some_and(|s| {
            s.len() > 1 && s.starts_with('v') && s[1..].chars().all(|c| c.is_ascii_digit())
        }));
    let lower = &lower[start..];
    let segments = &segments[start..];
    let mut params = Map::new();
    if let Some(Value::Object(queries)) = inputs.get("queries") {
        params.extend(queries.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if let Some(body) = inputs.get("body") {
        params.insert("item".into(), body.clone());
    }
    let text = |s: &String| Value::String(s.clone());
    let operation = match (method, lower.iter().map(String::as_str).collect::<Vec<_>>().as_slice()) {
        ("POST", ["soql", "executesoqlquery"]) => {
            params.insert("query".into(), inputs.get("body").cloned().unwrap_or(Value::Null));
            "ExecuteSoqlQuery"
        }
        (_, ["datasets", "default", "tables", _, rest @ ..]) => {
            params.insert("table".into(), text(&segments[3]));
            match (method, rest) {
                ("GET", ["items"]) => "GetItems",
                ("POST", ["items"]) => "PostItem",
                (_, ["items", _]) => {
                    params.insert("id".into(), text(&segments[5]));
                    match method {
                        "GET" => "GetItem",
                        "PATCH" => "PatchItem",
                        "DELETE" => "DeleteItem",
                        _ => return None,
                    }
                }
                ("PATCH", ["externalidfields", _, _]) => {
                    params.insert("externalIdField".into(), text(&segments[5]));
                    params.insert("externalId".into(), text(&segments[6]));
                    "PatchItemByExternalId"
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    Some((operation, params))
}

/// Logic Apps paths encode each parameter for the URL, twice:
/// `@{encodeURIComponent(encodeURIComponent('Account'))}` stands for `Account`, and
/// `@{encodeURIComponent(encodeURIComponent(body('a')?['id']))}` for `@{body('a')?['id']}`:
/// coflow's connectors encode what they put in a URL themselves.
fn unwrap_encoded(segment: &str) -> String {
    const WRAPPER: &str = "encodeuricomponent(";
    let Some(mut inner) = segment.strip_prefix("@{").and_then(|s| s.strip_suffix('}')) else {
        return segment.to_string();
    };
    let mut unwrapped = false;
    while let Some(rest) = inner
        .get(..WRAPPER.len())
        .filter(|head| head.eq_ignore_ascii_case(WRAPPER))
        .and_then(|_| inner[WRAPPER.len()..].strip_suffix(')'))
        .filter(|rest| balanced(rest))
    {
        inner = rest.trim();
        unwrapped = true;
    }
    if !unwrapped {
        return segment.to_string();
    }
    let literal = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\''));
    match literal.filter(|l| !l.replace("''", "").contains('\'')) {
        Some(literal) => literal.replace("''", "'"),
        None => format!("@{{{inner}}}"),
    }
}

/// Whether the parentheses of an expression close in it, outside its `'…'` strings.
fn balanced(expression: &str) -> bool {
    let mut depth = 0usize;
    let mut quoted = false;
    for c in expression.chars() {
        match c {
            // `''` inside a string toggles twice, which leaves it quoted.
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => {}
        }
    }
    depth == 0 && !quoted
}

/// A Salesforce polling trigger (`When a record is created / modified`) as `salesforce.poll`
/// settings; `None` when the trigger is not Salesforce's.
pub(super) fn salesforce_trigger(
    trigger: &Value,
    references: &Map<String, Value>,
) -> Option<Result<PollTrigger, String>> {
    let inputs = trigger.get("inputs")?;
    let api = api_name(inputs, references)?;
    if family(&api) != "salesforce" {
        return None;
    }
    let (operation, params) = match inputs.pointer("/host/operationId").and_then(Value::as_str) {
        Some(operation) => (base_operation(operation), unflatten(inputs.get("parameters"))),
        None => {
            let path = inputs.get("path").and_then(Value::as_str).unwrap_or_default();
            let segments: Vec<String> = split_outside(path, '/').iter().map(|s| unwrap_encoded(s)).collect();
            let mut params: Map<String, Value> = match inputs.get("queries") {
                Some(Value::Object(q)) => q.clone(),
                _ => Map::new(),
            };
            let table = segments.iter().rev().nth(1).cloned().unwrap_or_default();
            params.insert("table".into(), Value::String(table));
            let last = segments.last().map(|s| s.to_ascii_lowercase()).unwrap_or_default();
            (format!("get{last}"), params)
        }
    };
    Some(poll_settings(&operation, &params))
}

fn poll_settings(operation: &str, params: &Map<String, Value>) -> Result<PollTrigger, String> {
    let on = match operation {
        "getonnewitems" => "created",
        "getonupdateditems" => "created_or_modified",
        other => {
            return Err(format!(
                "the Salesforce trigger `{other}` has no coflow equivalent (salesforce.poll fires on created or modified records)"
            ));
        }
    };
    let object = match params.get("table") {
        Some(Value::String(t)) if !t.contains('@') && !t.is_empty() => t.clone(),
        _ => return Err("the trigger's object (`table`) is not a fixed name".into()),
    };
    let mut settings = Map::new();
    settings.insert("object".into(), Value::String(object));
    settings.insert("on".into(), Value::String(on.into()));
    let mut notes = Vec::new();
    if let Some(filter) = params.get("$filter") {
        let Value::String(filter) = filter else { return Err("the trigger's `$filter` is not text".into()) };
        if filter.contains('@') {
            return Err(
                "the trigger's `$filter` holds an expression; salesforce.poll needs a fixed SOQL condition"
                    .into(),
            );
        }
        let (condition, functions) = odata_to_soql(filter);
        if functions {
            notes.push(
                "the `$filter` uses OData functions (startswith, contains, ...): rewrite them in SOQL (LIKE)"
                    .into(),
            );
        }
        settings.insert("where".into(), Value::String(condition));
    }
    Ok(PollTrigger { settings, notes })
}

// ---- Partner Center --------------------------------------------------------------------------

fn pc(operation: &'static str) -> Mapped {
    Mapped::new("partner_center", operation)
}

const LIST_OPTIONS: [(&str, &str); 7] = [
    ("$filter", "filter"),
    ("$orderby", "orderby"),
    ("$select", "select"),
    ("$expand", "expand"),
    ("$top", "top"),
    ("$skip", "skip"),
    ("$count", "count"),
];

const PAGES_NOTE: &str = "list_referrals follows @odata.nextLink up to the connection's `max_items`, where the source read one page";

fn list_referrals(query: &Map<String, Value>) -> Mapping {
    let mut mapped = pc("list_referrals").note(PAGES_NOTE);
    for (key, value) in query {
        let Some((_, input)) = LIST_OPTIONS.iter().find(|(name, _)| name.eq_ignore_ascii_case(key)) else {
            mapped
                .notes
                .push(format!("query parameter `{key}` has no list_referrals input and was left out"));
            continue;
        };
        let value = match (*input, value) {
            ("top" | "skip", v) => number(v).map(Value::from).map_or_else(|| translate_json(v), Ok)?,
            ("count", Value::String(s))
                if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
            {
                Value::Bool(s.eq_ignore_ascii_case("true"))
            }
            (_, v) => translate_json(v)?,
        };
        mapped.inputs.insert((*input).to_string(), value);
    }
    Ok(mapped)
}

fn referral_body(params: &Map<String, Value>) -> Result<Value, String> {
    if let Some(body) = params.get("body") {
        return translate_json(body);
    }
    const NOT_BODY: [&str; 5] = ["id", "ms-correlationid", "x-caller-id", "content-type", "if-match"];
    let rest: Map<String, Value> = params
        .iter()
        .filter(|(k, _)| !NOT_BODY.contains(&k.to_ascii_lowercase().as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    translate_json(&Value::Object(rest))
}

const UPDATE_NOTE: &str = "update_referral reads the referral and PUTs it with its own If-Match, sending the body's fields as `changes`";

fn partner_center_referrals(operation: &str, params: &Map<String, Value>) -> Mapping {
    match base_operation(operation).as_str() {
        "getallreferrals" => list_referrals(params),
        "getreferralbyid" => Ok(pc("get_referral").input("id", required(params, "id")?)),
        "createreferral" => Ok(pc("create_referral").input("referral", referral_body(params)?)),
        "updatereferralbyid" => Ok(pc("update_referral")
            .input("id", required(params, "id")?)
            .input("changes", referral_body(params)?)
            .note(UPDATE_NOTE)),
        "patchreferralbyid" => Ok(pc("patch_referral")
            .input("id", required(params, "id")?)
            .input("operations", referral_body(params)?)),
        _ => Err(format!(
            "Partner Center Referrals operation `{operation}` has no coflow equivalent (coflow offers list_referrals, get_referral, create_referral, update_referral and patch_referral)"
        )),
    }
}

fn partner_center_events(operation: &str, params: &Map<String, Value>) -> Mapping {
    let body = params.get("body").cloned().unwrap_or_else(|| Value::Object(params.clone()));
    match base_operation(operation).as_str() {
        "viewregistration" => Ok(pc("get_registration")),
        "eventregistration" => {
            registration(pc("register_webhook").input("overwrite", Value::Bool(false)), &body)
        }
        "updateregistration" => registration(pc("update_registration"), &body),
        _ => Err(format!("Partner Center Events operation `{operation}` has no coflow equivalent")),
    }
}

/// A registration body (`WebhookUrl`, `WebhookEvents`, `SignatureTokenToMsSignatureHeader`) as
/// the inputs of coflow's registration operations.
fn registration(mut mapped: Mapped, body: &Value) -> Mapping {
    let Value::Object(body) = body else {
        return Err("the registration body is not an object with WebhookUrl and WebhookEvents".into());
    };
    let fields = [
        ("webhookurl", "url"),
        ("webhookevents", "events"),
        ("signaturetokentomssignatureheader", "signature_in_header"),
    ];
    for (key, value) in body {
        match fields.iter().find(|(name, _)| key.eq_ignore_ascii_case(name)) {
            Some((_, input)) => {
                mapped.inputs.insert((*input).to_string(), translate_json(value)?);
            }
            None => {
                mapped.notes.push(format!("registration field `{key}` has no coflow input and was left out"))
            }
        }
    }
    if !mapped.inputs.contains_key("url") {
        return Err("the registration body has no `WebhookUrl`".into());
    }
    Ok(mapped)
}

/// Which Partner Center API a URL calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PcApi {
    /// `api.partner.microsoft.com`: referrals.
    Referrals,
    /// `api.partnercenter.microsoft.com`: webhooks (and event resource URIs).
    PartnerCenter,
}

/// A plain HTTP action calling a Partner Center API, as the coflow operation it stands for;
/// `None` when the URL is not a recognised Partner Center call (it stays an `http` action).
pub(super) fn partner_center_http(inputs: &Value) -> Option<Mapping> {
    let uri = inputs.get("uri")?.as_str()?;
    let (api, rest) = pc_host(uri)?;
    let method = inputs.get("method").and_then(Value::as_str)?.to_ascii_uppercase();
    let parts = split_outside(rest, '?');
    let path = parts.first().cloned().unwrap_or_default();
    let mut query = parse_query(&parts[1..].join("?"));
    if let Some(Value::Object(given)) = inputs.get("queries") {
        query.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let segments: Vec<String> = split_outside(&path, '/').into_iter().filter(|s| !s.is_empty()).collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let mapping = match (api, method.as_str(), lower.as_slice()) {
        (PcApi::Referrals, "GET", ["v1.0", "engagements", "referrals"]) => list_referrals(&query),
        (PcApi::Referrals, _, ["v1.0", "engagements", "referrals", rest @ ..]) => referral_call(&method, rest, &segments, inputs),
        (PcApi::PartnerCenter, "GET", ["engagements", "v1", "referrals", _]) => by_id("get_referral", &segments[3])
            .map(|m| m.note("the event's ResourceUri became a Referrals API read (api.partner.microsoft.com), as Microsoft documents")),
        (PcApi::PartnerCenter, _, ["webhooks", "v1", "registration", tail @ ..]) => registration_call(&method, tail, inputs, &segments),
        _ => return None,
    };
    Some(mapping.map(|m| {
        m.note(
            "the connection in coflow.yaml signs in; the source's authentication and headers were left out",
        )
    }))
}

/// An operation on one referral, `id` from a path segment.
fn by_id(operation: &'static str, segment: &str) -> Mapping {
    Ok(pc(operation).input("id", Value::String(translate_text(segment)?)))
}

/// `/v1.0/engagements/referrals[/{id}]` with any method but a list's GET.
fn referral_call(method: &str, rest: &[&str], segments: &[String], inputs: &Value) -> Mapping {
    let body = || inputs.get("body").map_or(Ok(Value::Null), translate_json);
    match (method, rest) {
        ("POST", []) => Ok(pc("create_referral").input("referral", body()?)),
        ("GET", [_]) => by_id("get_referral", &segments[3]),
        ("PUT", [_]) => {
            Ok(by_id("update_referral", &segments[3])?.input("changes", body()?).note(UPDATE_NOTE))
        }
        ("PATCH", [_]) => {
            let mut mapped = by_id("patch_referral", &segments[3])?.input("operations", body()?);
            if let Some(etag) = header(inputs, "if-match") {
                mapped = mapped.input("etag", translate_json(etag)?);
            }
            Ok(mapped)
        }
        _ => Err(format!(
            "the Partner Center referrals call `{method} {}` has no coflow operation",
            segments.join("/")
        )),
    }
}

fn registration_call(method: &str, tail: &[&str], inputs: &Value, segments: &[String]) -> Mapping {
    let body = inputs.get("body").cloned().unwrap_or(Value::Null);
    match (method, tail) {
        ("GET", []) => Ok(pc("get_registration")),
        ("POST", []) => registration(pc("register_webhook").input("overwrite", Value::Bool(false)), &body),
        ("PUT", []) => registration(pc("update_registration"), &body),
        ("DELETE", []) => Ok(pc("delete_registration")),
        ("GET", ["events"]) => Ok(pc("list_events")),
        ("POST", ["validationevents"]) => Ok(pc("validate")),
        ("GET", ["validationevents", _]) => {
            Ok(pc("get_validation_status")
                .input("correlation_id", Value::String(translate_text(&segments[4])?)))
        }
        _ => Err(format!(
            "the Partner Center webhook call `{method} {}` has no coflow operation",
            segments.join("/")
        )),
    }
}

fn header<'a>(inputs: &'a Value, name: &str) -> Option<&'a Value> {
    let Some(Value::Object(headers)) = inputs.get("headers") else { return None };
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// The Partner Center API a literal URL calls, and what follows the host.
fn pc_host(uri: &str) -> Option<(PcApi, &str)> {
    let lower = uri.to_ascii_lowercase();
    for (host, api) in [
        ("api.partner.microsoft.com", PcApi::Referrals),
        ("api.partnercenter.microsoft.com", PcApi::PartnerCenter),
    ] {
        for scheme in ["https://", "http://"] {
            let prefix = format!("{scheme}{host}");
            if lower.starts_with(&prefix) {
                let rest = &uri[prefix.len()..];
                let rest = rest.strip_prefix(":443").unwrap_or(rest);
                return Some((api, rest));
            }
        }
    }
    None
}

/// `a=1&$filter=x%20eq%201` → `{a: "1", $filter: "x eq 1"}`.
fn parse_query(query: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for pair in split_outside(query, '&') {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((&pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
        };
        out.insert(decode(key), Value::String(decode(value)));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn connections_are_named_by_each_kind_of_host() {
        let none = Map::new();
        let standard = json!({"host": {"connection": {"referenceName": "salesforce-2"}}});
        assert_eq!(api_name(&standard, &none).as_deref(), Some("salesforce-2"));
        assert_eq!(family("salesforce-2"), "salesforce");
        let consumption = json!({"host": {"connection": {"name": "@parameters('$connections')['salesforce_1']['connectionId']"}}});
        assert_eq!(api_name(&consumption, &none).as_deref(), Some("salesforce_1"));
        assert_eq!(family("salesforce_1"), "salesforce");
        assert_eq!(api_name(&json!({"host": {}}), &none), None);
    }

    #[test]
    fn odata_filters_become_soql() {
        assert_eq!(
            odata_to_soql("Name eq 'Tom and Jerry' and Amount gt 5 or not IsClosed eq true"),
            ("Name = 'Tom and Jerry' AND Amount > 5 OR NOT IsClosed = true".into(), false)
        );
        assert_eq!(
            odata_to_soql("Email eq '@{triggerBody()?['email']}' and startswith(Name,'A')"),
            ("Email = '@{triggerBody()?['email']}' AND startswith(Name,'A')".into(), true)
        );
        assert_eq!(odata_order("Name desc,CreatedDate"), "Name DESC, CreatedDate");
    }

    #[test]
    fn designer_paths_nest() {
        let params = unflatten(Some(&json!({"table": "Account", "item/Name": "x", "item/Owner/Id": "y"})));
        assert_eq!(
            Value::Object(params),
            json!({"table": "Account", "item": {"Name": "x", "Owner": {"Id": "y"}}})
        );
    }

    #[test]
    fn splitting_keeps_expressions_whole() {
        assert_eq!(
            split_outside("v1.0/referrals/@{body('a')?['b/c']}?x=1", '/'),
            vec!["v1.0", "referrals", "@{body('a')?['b/c']}?x=1"]
        );
        assert_eq!(unwrap_encoded("@{encodeURIComponent(encodeURIComponent('Account'))}"), "Account");
        assert_eq!(unwrap_encoded("@{encodeURIComponent('it''s')}"), "it's");
        assert_eq!(
            unwrap_encoded("@{encodeURIComponent(encodeURIComponent(body('Parse')?['id']))}"),
            "@{body('Parse')?['id']}"
        );
        // Only a wrapper around the whole segment is the connector's encoding.
        let two = "@{encodeURIComponent(a())}-@{encodeURIComponent(b())}";
        assert_eq!(unwrap_encoded(two), two);
        assert_eq!(unwrap_encoded("@{encodeURIComponent(x)}y)}"), "@{encodeURIComponent(x)}y)}");
    }

    #[test]
    fn partner_center_calls_map_to_operations() {
        let get = partner_center_http(&json!({
            "method": "GET",
            "uri": "https://api.partner.microsoft.com/v1.0/engagements/referrals/@{triggerBody()?['id']}",
            "headers": {"Authorization": "Bearer @{body('Token')?['access_token']}"}
        }));
        let get = get.expect("a Partner Center call").expect("mapped");
        assert_eq!((get.connector, get.operation), ("partner_center", "get_referral"));
        assert_eq!(get.inputs["id"], json!("{{ string(opt(triggerBody(), 'id')) }}"));
        let list = partner_center_http(&json!({
            "method": "get",
            "uri": "https://api.partner.microsoft.com/v1.0/engagements/referrals?$filter=status%20eq%20'Active'&$top=50"
        }));
        let list = list.expect("a Partner Center call").expect("mapped");
        assert_eq!(list.operation, "list_referrals");
        assert_eq!(Value::Object(list.inputs), json!({"filter": "status eq 'Active'", "top": 50}));
        assert!(partner_center_http(&json!({"method": "GET", "uri": "https://example.com/x"})).is_none());
    }
}
