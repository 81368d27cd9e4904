//! `coflow graph FLOW`: draw a flow's actions and `run_after` edges as Mermaid or Graphviz dot.
//!
//! Containers (`if`, `switch`, `scope`, `foreach`, `until`) are drawn as nested subgraphs, one
//! per branch; edges carry their statuses when they are not the default `[succeeded]`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use super::GraphFormat;
use crate::flow::{self, ActionKind, Block, Flow, StatusSet};

/// Loads `path` and prints its graph; exit code 1 (with the diagnostics) when it is invalid.
/// A flow from `coflow import` is drawn with its placeholders, so what is left to translate
/// shows in place.
pub fn run(path: &Path, format: GraphFormat) -> anyhow::Result<ExitCode> {
    let flow = match flow::load_file_for_drawing(path) {
        Ok((flow, placeholders)) => {
            let count = placeholders.errors().count();
            if count > 0 {
                eprintln!(
                    "note: {count} placeholder(s) of `coflow import` (type: unsupported) are drawn as they are; `coflow validate` lists them"
                );
            }
            flow
        }
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let text = match format {
        GraphFormat::Mermaid => mermaid(&flow),
        GraphFormat::Dot => dot(&flow),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// A drawable action: its id, label and, for containers, its branches.
struct Item {
    id: String,
    name: String,
    type_name: String,
    branches: Vec<Branch>,
    container: bool,
}

impl Item {
    /// The body of a `scope`, `foreach` or `until`, drawn without a branch box of its own.
    fn single_body(&self) -> Option<&Branch> {
        match self.branches.as_slice() {
            [only] if only.label == "actions" => Some(only),
            _ => None,
        }
    }
}

/// One block inside a container (`then`, `case "x"`, `actions`, ...).
struct Branch {
    id: String,
    label: String,
    items: Vec<Item>,
}

struct Edge {
    from: String,
    to: String,
    label: Option<String>,
}

struct Drawing {
    trigger: String,
    items: Vec<Item>,
    edges: Vec<Edge>,
}

fn layout(flow: &Flow) -> Drawing {
    let mut counter = 0;
    let mut edges = Vec::new();
    let items = block_items(&flow.root, &mut counter, &mut edges, Some("trigger"));
    Drawing { trigger: flow.trigger.kind.clone(), items, edges }
}

fn block_items(block: &Block, counter: &mut usize, edges: &mut Vec<Edge>, start: Option<&str>) -> Vec<Item> {
    let ids: Vec<String> = block
        .actions
        .iter()
        .map(|_| {
            *counter += 1;
            format!("a{counter}")
        })
        .collect();
    let mut items = Vec::with_capacity(block.actions.len());
    for (action, id) in block.actions.iter().zip(&ids) {
        if action.run_after.is_empty() {
            if let Some(start) = start {
                edges.push(Edge { from: start.into(), to: id.clone(), label: None });
            }
        }
        for pred in &action.run_after {
            let Some(from) = ids.get(pred.action) else { continue };
            edges.push(Edge { from: from.clone(), to: id.clone(), label: status_label(pred.statuses) });
        }
        let containers = branches_of(&action.kind);
        let container = !containers.is_empty();
        let branches = containers
            .into_iter()
            .enumerate()
            .filter(|(_, (_, block))| !block.actions.is_empty())
            .map(|(n, (label, block))| Branch {
                id: format!("{id}_b{n}"),
                label,
                items: block_items(block, counter, edges, None),
            })
            .collect();
        items.push(Item {
            id: id.clone(),
            name: action.name.clone(),
            type_name: action.type_name.clone(),
            branches,
            container,
        });
    }
    items
}

fn branches_of(kind: &ActionKind) -> Vec<(String, &Block)> {
    match kind {
        ActionKind::If { then, otherwise, .. } => vec![("then".into(), then), ("else".into(), otherwise)],
        ActionKind::Switch { cases, default, .. } => {
            let mut branches: Vec<(String, &Block)> =
                cases.iter().map(|(value, block)| (format!("case {value}"), block)).collect();
            branches.push(("default".into(), default));
            branches
        }
        ActionKind::Scope { actions }
        | ActionKind::Foreach { actions, .. }
        | ActionKind::Until { actions, .. } => {
            vec![("actions".into(), actions)]
        }
        _ => Vec::new(),
    }
}

/// `None` for the default `[succeeded]`, else the statuses, e.g. `failed, timed_out`.
fn status_label(set: StatusSet) -> Option<String> {
    if set == StatusSet::SUCCEEDED {
        return None;
    }
    let names = [
        (set.succeeded, "succeeded"),
        (set.failed, "failed"),
        (set.skipped, "skipped"),
        (set.timed_out, "timed_out"),
    ];
    Some(names.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect::<Vec<_>>().join(", "))
}

/// The flow as a Mermaid flowchart.
pub fn mermaid(flow: &Flow) -> String {
    let drawing = layout(flow);
    let mut out = String::from("flowchart TD\n");
    let _ = writeln!(out, "    trigger([\"{}\"])", mermaid_text(&format!("trigger: {}", drawing.trigger)));
    for item in &drawing.items {
        mermaid_item(&mut out, item, 1);
    }
    for edge in &drawing.edges {
        match &edge.label {
            Some(label) => {
                let _ = writeln!(out, "    {} -->|\"{}\"| {}", edge.from, mermaid_text(label), edge.to);
            }
            None => {
                let _ = writeln!(out, "    {} --> {}", edge.from, edge.to);
            }
        }
    }
    out
}

fn mermaid_item(out: &mut String, item: &Item, depth: usize) {
    let pad = "    ".repeat(depth);
    if !item.container {
        let label = mermaid_text(&format!("{}<br/>{}", item.name, item.type_name));
        let _ = writeln!(out, "{pad}{}[\"{label}\"]", item.id);
        return;
    }
    let _ = writeln!(
        out,
        "{pad}subgraph {} [\"{}\"]",
        item.id,
        mermaid_text(&format!("{} ({})", item.name, item.type_name))
    );
    if let Some(only) = item.single_body() {
        for inner in &only.items {
            mermaid_item(out, inner, depth + 1);
        }
    } else {
        for branch in &item.branches {
            let _ = writeln!(out, "{pad}    subgraph {} [\"{}\"]", branch.id, mermaid_text(&branch.label));
            for inner in &branch.items {
                mermaid_item(out, inner, depth + 2);
            }
            let _ = writeln!(out, "{pad}    end");
        }
    }
    let _ = writeln!(out, "{pad}end");
}

/// Mermaid labels are quoted; quotes inside them become entities.
fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
}

/// The flow as a Graphviz dot digraph.
pub fn dot(flow: &Flow) -> String {
    let drawing = layout(flow);
    let mut out = format!("digraph \"{}\" {{\n", dot_text(&flow.name));
    out.push_str("    compound=true;\n    rankdir=TB;\n    node [shape=box, fontname=\"Helvetica\"];\n");
    let _ = writeln!(out, "    trigger [label=\"trigger\\n{}\", shape=oval];", dot_text(&drawing.trigger));
    let mut containers = Vec::new();
    for item in &drawing.items {
        dot_item(&mut out, item, 1, &mut containers);
    }
    for edge in &drawing.edges {
        let mut attrs = Vec::new();
        if let Some(label) = &edge.label {
            attrs.push(format!("label=\"{}\"", dot_text(label)));
        }
        if containers.contains(&edge.from) {
            attrs.push(format!("ltail=\"cluster_{}\"", edge.from));
        }
        if containers.contains(&edge.to) {
            attrs.push(format!("lhead=\"cluster_{}\"", edge.to));
        }
        let attrs = if attrs.is_empty() { String::new() } else { format!(" [{}]", attrs.join(", ")) };
        let _ = writeln!(out, "    {} -> {}{attrs};", edge.from, edge.to);
    }
    out.push_str("}\n");
    out
}

fn dot_item(out: &mut String, item: &Item, depth: usize, containers: &mut Vec<String>) {
    let pad = "    ".repeat(depth);
    let label = format!("{}\\n{}", dot_text(&item.name), dot_text(&item.type_name));
    if !item.container {
        let _ = writeln!(out, "{pad}{} [label=\"{label}\"];", item.id);
        return;
    }
    // Edges to and from a container attach to a header node inside its cluster and are
    // clipped at the cluster's border (lhead/ltail).
    containers.push(item.id.clone());
    let _ = writeln!(out, "{pad}subgraph cluster_{} {{", item.id);
    let _ = writeln!(out, "{pad}    label=\"{} ({})\";", dot_text(&item.name), dot_text(&item.type_name));
    let _ = writeln!(out, "{pad}    {} [label=\"{label}\", shape=diamond];", item.id);
    if let Some(only) = item.single_body() {
        for inner in &only.items {
            dot_item(out, inner, depth + 1, containers);
        }
    }
    for branch in item.branches.iter().filter(|_| item.single_body().is_none()) {
        let _ = writeln!(out, "{pad}    subgraph cluster_{} {{", branch.id);
        let _ = writeln!(out, "{pad}        label=\"{}\";", dot_text(&branch.label));
        for inner in &branch.items {
            dot_item(out, inner, depth + 2, containers);
        }
        let _ = writeln!(out, "{pad}    }}");
    }
    let _ = writeln!(out, "{pad}}}");
}

fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
