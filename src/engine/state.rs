//! The live state of a run, and what templates see of it (the [`Scope`] implementation).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use super::record::{ActionResult, ResponseRecord, Status};
use super::{ActionEvent, CancelToken, Observer};
use crate::expr::{ActionOutputs, Mappings, Scope, SyncSettings};
use crate::flow::VariableType;

/// Locks a mutex, recovering the data if another thread panicked while holding it: the state
/// it guards is only ever replaced whole, so it is never left half-written.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A variable's declared type and current value.
#[derive(Debug, Clone)]
pub(crate) struct Variable {
    pub kind: VariableType,
    pub value: Value,
}

/// How `body('x')` reads an action's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyOf {
    /// The outputs themselves (compose, select, …).
    Outputs,
    /// The `body` field of the outputs (http, connectors).
    Field,
}

/// A finished action as the run keeps it, shared (`Arc<Entry>`) between its frame, the loop's
/// `latest` map and the templates reading it rather than copied.
#[derive(Debug)]
pub(crate) struct Entry {
    pub result: ActionResult,
    pub body: BodyOf,
    /// The record templates read (`actions('x')`), kept from the first read (see [`Entry::record`]).
    record: OnceLock<Arc<Value>>,
}

impl Entry {
    fn new(result: ActionResult, body: BodyOf) -> Self {
        Entry { result, body, record: OnceLock::new() }
    }

    /// The record of this entry as `actions('name')` returns it.
    ///
    /// A record that copies a document (inputs or outputs that are a map or a list) is built
    /// once and kept, so later reads share it. One of scalars is rebuilt on each read: that
    /// costs less than keeping its dozen small allocations alive until the run ends.
    fn record(&self, name: &str) -> Arc<Value> {
        let build = || Arc::new(action_value(name, &self.result, self.body));
        let is_document = |value: &Option<Value>| matches!(value, Some(Value::Object(_) | Value::Array(_)));
        if is_document(&self.result.inputs) || is_document(&self.result.outputs) {
            self.record.get_or_init(build).clone()
        } else {
            build()
        }
    }

    /// The result, moved out unless something (the loop's `latest`) still holds the entry.
    pub fn into_result(self: Arc<Self>) -> ActionResult {
        Arc::try_unwrap(self).map_or_else(|shared| shared.result.clone(), |entry| entry.result)
    }
}

/// What a missing output reads as.
static NULL: Value = Value::Null;

impl ActionOutputs for Entry {
    fn outputs(&self) -> &Value {
        self.result.outputs.as_ref().unwrap_or(&NULL)
    }

    fn body(&self) -> &Value {
        let outputs = self.outputs();
        match self.body {
            BodyOf::Outputs => outputs,
            BodyOf::Field => outputs.get("body").unwrap_or(&NULL),
        }
    }
}

/// Why the run was stopped early by a `terminate` action.
#[derive(Debug, Clone)]
pub(crate) struct Termination {
    pub status: Status,
    pub error: Option<super::ActionError>,
}

/// What every frame of one run shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub flow_name: String,
    pub run_id: String,
    /// The trigger's outputs, `{"headers": …, "body": …}`, shared with every template.
    pub trigger: Arc<Value>,
    pub parameters: IndexMap<String, Value>,
    pub mappings: Arc<Mappings>,
    pub sync: Arc<SyncSettings>,
    pub variables: Mutex<HashMap<String, Variable>>,
    /// Latest record of each action inside a loop, so `body('x')` works from outside the loop.
    pub latest: Mutex<HashMap<String, Arc<Entry>>>,
    /// Container name -> names of the actions directly inside it, for `result('x')`.
    pub children: HashMap<String, Vec<String>>,
    pub stop: CancelToken,
    pub termination: Mutex<Option<Termination>>,
    pub response: Mutex<Option<ResponseRecord>>,
    pub observer: Option<Arc<dyn Observer>>,
}

impl Shared {
    /// Whether the run is being stopped (terminate or cancellation).
    pub fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }
}

/// Which loop iteration a frame is.
#[derive(Debug, Clone)]
pub(crate) struct LoopInfo {
    pub name: String,
    pub index: usize,
    /// The current item (`foreach` only).
    pub item: Option<Value>,
}

/// The actions recorded in one container run: the whole flow, or one loop iteration.
#[derive(Debug)]
pub(crate) struct Frame {
    pub shared: Arc<Shared>,
    parent: Option<Arc<Frame>>,
    pub loop_info: Option<LoopInfo>,
    entries: Mutex<IndexMap<String, Arc<Entry>>>,
}

impl Frame {
    /// The frame of the whole run.
    pub fn root(shared: Arc<Shared>) -> Arc<Frame> {
        Arc::new(Frame { shared, parent: None, loop_info: None, entries: Mutex::default() })
    }

    /// A frame for one loop iteration.
    pub fn iteration(parent: &Arc<Frame>, info: LoopInfo) -> Arc<Frame> {
        Arc::new(Frame {
            shared: parent.shared.clone(),
            parent: Some(parent.clone()),
            loop_info: Some(info),
            entries: Mutex::default(),
        })
    }

    /// Whether this frame is a loop iteration (or nested in one).
    pub fn in_loop(&self) -> bool {
        self.parent.is_some()
    }

    /// Keeps a finished action and tells the observer.
    pub fn record(&self, name: &str, result: ActionResult, body: BodyOf) {
        if let Some(observer) = &self.shared.observer {
            let path = self.iteration_path();
            // Redacting changes nothing until a secret is revealed: only then copy the result.
            if crate::expr::secrets::any_revealed() {
                let mut shown = result.clone();
                super::redact_result(&mut shown);
                observer.action_finished(&ActionEvent { name, iterations: &path, result: &shown });
            } else {
                observer.action_finished(&ActionEvent { name, iterations: &path, result: &result });
            }
        }
        let entry = Arc::new(Entry::new(result, body));
        if self.in_loop() {
            lock(&self.shared.latest).insert(name.to_string(), entry.clone());
        }
        lock(&self.entries).insert(name.to_string(), entry);
    }

    /// The error of an action already recorded in this frame.
    pub fn error_of(&self, name: &str) -> Option<super::ActionError> {
        lock(&self.entries).get(name).and_then(|e| e.result.error.clone())
    }

    /// Takes every recorded action out of the frame.
    pub fn take_entries(&self) -> IndexMap<String, Arc<Entry>> {
        std::mem::take(&mut *lock(&self.entries))
    }

    /// Loops enclosing this frame, outermost first, as `(loop name, iteration index)`.
    pub fn iteration_path(&self) -> Vec<(String, usize)> {
        let mut path = Vec::new();
        let mut frame = Some(self);
        while let Some(f) = frame {
            if let Some(info) = &f.loop_info {
                path.push((info.name.clone(), info.index));
            }
            frame = f.parent.as_deref();
        }
        path.reverse();
        path
    }

    /// The entry of `name`: in this frame, an enclosing one, or the latest of any loop.
    fn find_entry(&self, name: &str) -> Option<Arc<Entry>> {
        let mut frame = Some(self);
        while let Some(f) = frame {
            if let Some(entry) = lock(&f.entries).get(name) {
                return Some(entry.clone());
            }
            frame = f.parent.as_deref();
        }
        lock(&self.shared.latest).get(name).cloned()
    }

    fn find_loop(&self, name: Option<&str>, want_item: bool) -> Option<&LoopInfo> {
        let mut frame = Some(self);
        while let Some(f) = frame {
            if let Some(info) = &f.loop_info {
                let name_ok = name.is_none_or(|n| n == info.name);
                if name_ok && (!want_item || info.item.is_some()) {
                    return Some(info);
                }
            }
            frame = f.parent.as_deref();
        }
        None
    }
}

/// The record `actions('x')` returns; `body` is resolved the way `body('x')` reads it.
fn action_value(name: &str, result: &ActionResult, body_of: BodyOf) -> Value {
    let outputs = result.outputs.clone().unwrap_or(Value::Null);
    let body = match body_of {
        BodyOf::Outputs => outputs.clone(),
        BodyOf::Field => outputs.get("body").cloned().unwrap_or(Value::Null),
    };
    let mut map = Map::with_capacity(8);
    map.insert("name".into(), Value::String(name.to_string()));
    map.insert("status".into(), Value::String(result.status.as_str().to_string()));
    map.insert("inputs".into(), result.inputs.clone().unwrap_or(Value::Null));
    map.insert("outputs".into(), outputs);
    map.insert("body".into(), body);
    map.insert("error".into(), serde_json::to_value(&result.error).unwrap_or(Value::Null));
    if let Some(started) = result.started_at {
        map.insert("startTime".into(), Value::String(started.to_string()));
    }
    if let Some(ended) = result.ended_at {
        map.insert("endTime".into(), Value::String(ended.to_string()));
    }
    Value::Object(map)
}

impl Scope for Frame {
    fn trigger(&self) -> Arc<Value> {
        self.shared.trigger.clone()
    }

    fn action(&self, name: &str) -> Option<Arc<Value>> {
        self.find_entry(name).map(|entry| entry.record(name))
    }

    fn action_outputs(&self, name: &str) -> Option<Arc<dyn ActionOutputs>> {
        self.find_entry(name).map(|entry| entry as Arc<dyn ActionOutputs>)
    }

    fn variable(&self, name: &str) -> Option<Value> {
        lock(&self.shared.variables).get(name).map(|v| v.value.clone())
    }

    fn parameter(&self, name: &str) -> Option<Value> {
        self.shared.parameters.get(name).cloned()
    }

    fn item(&self, loop_name: Option<&str>) -> Option<Value> {
        self.find_loop(loop_name, true).and_then(|info| info.item.clone())
    }

    fn iteration_index(&self, loop_name: &str) -> Option<usize> {
        self.find_loop(Some(loop_name), false).map(|info| info.index)
    }

    fn result(&self, container: &str) -> Option<Value> {
        let children = self.shared.children.get(container)?;
        let own = self.find_entry(container);
        let iterations = own.as_ref().and_then(|e| e.result.iterations.as_ref());
        let items = match iterations {
            // Loops: one object per inner action, its outputs one record per iteration.
            Some(iterations) => children
                .iter()
                .map(|child| {
                    let per_iteration: Vec<Value> = iterations
                        .iter()
                        .filter_map(|it| it.actions.get(child))
                        .map(|r| action_value(child, r, BodyOf::Outputs))
                        .collect();
                    json!({"name": child, "outputs": per_iteration})
                })
                .collect(),
            None => children
                .iter()
                .filter_map(|child| self.find_entry(child).map(|e| action_value(child, &e.result, e.body)))
                .collect(),
        };
        Some(Value::Array(items))
    }

    fn workflow(&self) -> Value {
        json!({"name": self.shared.flow_name, "run": {"name": self.shared.run_id}})
    }

    fn mappings(&self) -> Option<&Mappings> {
        Some(&self.shared.mappings)
    }

    fn sync_settings(&self) -> Arc<SyncSettings> {
        self.shared.sync.clone()
    }
}

/// The scope of one `select` / `filter` item: the frame plus `item()`.
#[derive(Debug)]
pub(crate) struct ItemScope {
    pub frame: Arc<Frame>,
    pub item: Value,
}

impl Scope for ItemScope {
    fn trigger(&self) -> Arc<Value> {
        self.frame.trigger()
    }
    fn action(&self, name: &str) -> Option<Arc<Value>> {
        self.frame.action(name)
    }
    fn action_outputs(&self, name: &str) -> Option<Arc<dyn ActionOutputs>> {
        self.frame.action_outputs(name)
    }
    fn variable(&self, name: &str) -> Option<Value> {
        self.frame.variable(name)
    }
    fn parameter(&self, name: &str) -> Option<Value> {
        self.frame.parameter(name)
    }
    fn item(&self, loop_name: Option<&str>) -> Option<Value> {
        match loop_name {
            None => Some(self.item.clone()),
            Some(_) => self.frame.item(loop_name),
        }
    }
    fn iteration_index(&self, loop_name: &str) -> Option<usize> {
        self.frame.iteration_index(loop_name)
    }
    fn result(&self, container: &str) -> Option<Value> {
        self.frame.result(container)
    }
    fn workflow(&self) -> Value {
        self.frame.workflow()
    }
    fn mappings(&self) -> Option<&Mappings> {
        self.frame.mappings()
    }
    fn sync_settings(&self) -> Arc<SyncSettings> {
        self.frame.sync_settings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outputs: Value) -> Entry {
        let mut result = ActionResult::new(Status::Succeeded);
        result.outputs = Some(outputs);
        Entry::new(result, BodyOf::Field)
    }

    #[test]
    fn a_record_holding_a_document_is_built_once() {
        let entry = entry(json!({"statusCode": 200, "body": {"id": 7}}));
        let first = entry.record("call");
        assert!(Arc::ptr_eq(&first, &entry.record("call")));
        assert_eq!(first["body"], json!({"id": 7}));
        assert_eq!(first["outputs"]["statusCode"], json!(200));
    }

    #[test]
    fn a_record_of_scalars_is_rebuilt_alike() {
        let entry = entry(json!(3));
        assert_eq!(entry.record("n"), entry.record("n"));
        assert_eq!(entry.record("n")["name"], json!("n"));
    }

    #[test]
    fn the_result_moves_out_or_is_copied_while_shared() {
        let shared = Arc::new(entry(json!([1])));
        let held = shared.clone();
        assert_eq!(shared.into_result().outputs, Some(json!([1])));
        assert_eq!(held.into_result().outputs, Some(json!([1])));
    }
}
