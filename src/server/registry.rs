//! The flows a server runs: every flow file of one folder, reloaded when a file changes.
//!
//! A reload validates each file first. A file that no longer compiles keeps its last good
//! version running and its diagnostics are logged and shown by the admin API, so a typo saved
//! in an editor never stops a flow that was working.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Serialize;

use crate::flow::{self, Flow};

/// A flow as loaded from its file.
#[derive(Debug)]
pub struct LoadedFlow {
    /// The compiled flow.
    pub flow: Arc<Flow>,
    /// The file it came from.
    pub path: PathBuf,
    /// The file's text, for display.
    pub source: String,
}

/// A flow file that does not compile, with its diagnostics rendered as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadProblem {
    /// The file.
    pub path: PathBuf,
    /// Every diagnostic, rendered like `coflow validate` does.
    pub message: String,
    /// Whether an older version of the flow keeps running.
    pub kept_previous: bool,
}

/// Everything loaded from the folder at one moment; replaced as a whole on reload.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Flows by name.
    pub flows: BTreeMap<String, Arc<LoadedFlow>>,
    /// Files that do not compile.
    pub problems: Vec<LoadProblem>,
}

/// The flows of one folder.
#[derive(Debug)]
pub struct FlowRegistry {
    dir: PathBuf,
    current: RwLock<Arc<Snapshot>>,
    fingerprint: RwLock<Fingerprint>,
}

/// File names and modification times of everything a reload reads.
type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

impl crate::engine::FlowSource for FlowRegistry {
    fn flow(&self, name: &str) -> Option<Arc<Flow>> {
        self.get(name).map(|loaded| loaded.flow.clone())
    }
}

impl FlowRegistry {
    /// Loads every flow of `dir`; fails only if the folder cannot be read. Files that do not
    /// compile are reported in [`Snapshot::problems`].
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let fingerprint = fingerprint(dir)?;
        let snapshot = load_snapshot(dir, &Snapshot::default())?;
        Ok(FlowRegistry {
            dir: dir.to_path_buf(),
            current: RwLock::new(Arc::new(snapshot)),
            fingerprint: RwLock::new(fingerprint),
        })
    }

    /// A registry over flows given directly (tests, benchmarks): nothing to reload.
    pub fn from_flows(flows: impl IntoIterator<Item = Flow>) -> Self {
        let flows = flows
            .into_iter()
            .map(|flow| {
                let name = flow.name.clone();
                let path = flow.source.clone().unwrap_or_default();
                (name, Arc::new(LoadedFlow { flow: Arc::new(flow), path, source: String::new() }))
            })
            .collect();
        FlowRegistry {
            dir: PathBuf::new(),
            current: RwLock::new(Arc::new(Snapshot { flows, problems: Vec::new() })),
            fingerprint: RwLock::new(Vec::new()),
        }
    }

    /// The folder the flows come from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The flows as currently loaded.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// One flow by name.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedFlow>> {
        self.snapshot().flows.get(name).cloned()
    }

    /// Reloads the folder if any flow or mapping file changed; true if something was reloaded.
    pub fn reload_if_changed(&self) -> std::io::Result<bool> {
        if self.dir.as_os_str().is_empty() {
            return Ok(false);
        }
        let now = fingerprint(&self.dir)?;
        {
            let seen = self.fingerprint.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            if *seen == now {
                return Ok(false);
            }
        }
        let previous = self.snapshot();
        let snapshot = load_snapshot(&self.dir, &previous)?;
        for problem in &snapshot.problems {
            tracing::error!(
                file = %problem.path.display(),
                kept_previous = problem.kept_previous,
                "flow file does not compile:\n{}",
                problem.message
            );
        }
        let names: Vec<&String> = snapshot.flows.keys().collect();
        tracing::info!(flows = ?names, "flows reloaded");
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(snapshot);
        *self.fingerprint.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
        Ok(true)
    }
}

/// Whether `path` is a flow file of the folder (flow tests are not).
fn is_flow_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    (name.ends_with(".yaml") || name.ends_with(".yml")) && !name.contains(".test.")
}

fn flow_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && is_flow_file(path))
        .collect();
    files.sort();
    Ok(files)
}

/// Flow files, mapping files and settings files with their modification times and sizes.
fn fingerprint(dir: &Path) -> std::io::Result<Fingerprint> {
    let mut files = flow_files(dir)?;
    for folder in ["mappings", "settings"] {
        let folder = dir.join(folder);
        if folder.is_dir() {
            files.extend(flow_files(&folder)?);
        }
    }
    Ok(files
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (path, modified, len)
        })
        .collect())
}

fn load_snapshot(dir: &Path, previous: &Snapshot) -> std::io::Result<Snapshot> {
    let mut snapshot = Snapshot::default();
    for path in flow_files(dir)? {
        let source = std::fs::read_to_string(&path)?;
        match flow::load_file(&path) {
            Ok(flow) => add_flow(&mut snapshot, flow, path, source),
            Err(diagnostics) => {
                let kept = previous.flows.values().find(|loaded| loaded.path == path);
                if let Some(kept) = kept {
                    snapshot.flows.insert(kept.flow.name.clone(), kept.clone());
                }
                let message = diagnostics.to_string();
                snapshot.problems.push(LoadProblem { path, message, kept_previous: kept.is_some() });
            }
        }
    }
    Ok(snapshot)
}

fn add_flow(snapshot: &mut Snapshot, flow: Flow, path: PathBuf, source: String) {
    if let Some(existing) = snapshot.flows.get(&flow.name) {
        let message = format!(
            "flow name `{}` is already used by {}: give each flow a unique `name`",
            flow.name,
            existing.path.display()
        );
        snapshot.problems.push(LoadProblem { path, message, kept_previous: false });
        return;
    }
    let name = flow.name.clone();
    snapshot.flows.insert(name, Arc::new(LoadedFlow { flow: Arc::new(flow), path, source }));
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "name: hello\ntrigger: {type: manual}\nactions:\n  Say:\n    type: compose\n    inputs: hi\n";

    fn temp_dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("coflow-registry-{label}-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn loads_flows_and_skips_test_files() {
        let dir = temp_dir("load");
        std::fs::write(dir.join("hello.yaml"), GOOD).unwrap();
        std::fs::write(dir.join("hello.test.yaml"), "not: a flow").unwrap();
        let registry = FlowRegistry::load(&dir).unwrap();
        let snapshot = registry.snapshot();
        assert_eq!(snapshot.flows.keys().collect::<Vec<_>>(), ["hello"]);
        assert!(snapshot.problems.is_empty(), "{:?}", snapshot.problems);
    }

    #[test]
    fn a_broken_edit_keeps_the_previous_version() {
        let dir = temp_dir("reload");
        let file = dir.join("hello.yaml");
        std::fs::write(&file, GOOD).unwrap();
        let registry = FlowRegistry::load(&dir).unwrap();
        assert!(!registry.reload_if_changed().unwrap(), "nothing changed yet");

        std::fs::write(&file, GOOD.replace("type: compose", "type: compsoe")).unwrap();
        assert!(registry.reload_if_changed().unwrap());
        let snapshot = registry.snapshot();
        assert!(snapshot.flows.contains_key("hello"), "the old version keeps running");
        assert_eq!(snapshot.problems.len(), 1);
        assert!(snapshot.problems[0].kept_previous);
        assert!(snapshot.problems[0].message.contains("compsoe"), "{}", snapshot.problems[0].message);

        std::fs::write(&file, GOOD.replace("inputs: hi", "inputs: hello again")).unwrap();
        assert!(registry.reload_if_changed().unwrap());
        let snapshot = registry.snapshot();
        assert!(snapshot.problems.is_empty());
        assert!(snapshot.flows["hello"].source.contains("hello again"));
    }

    #[test]
    fn duplicate_flow_names_are_a_problem() {
        let dir = temp_dir("dup");
        std::fs::write(dir.join("a.yaml"), GOOD).unwrap();
        std::fs::write(dir.join("b.yaml"), GOOD).unwrap();
        let snapshot = FlowRegistry::load(&dir).unwrap().snapshot();
        assert_eq!(snapshot.flows.len(), 1);
        assert!(snapshot.problems[0].message.contains("already used"), "{:?}", snapshot.problems);
    }
}
