//! What `coflow import` tells its user: per flow, what was translated, what needs attention and
//! why, and what was translated with a difference worth knowing.

use std::fmt::Write as _;

use serde::Serialize;

/// Stands for the trigger where a report line names an action.
pub const TRIGGER: &str = "(trigger)";

/// Something a person has to do before the flow behaves like its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attention {
    /// The action's name, or [`TRIGGER`].
    pub action: String,
    /// Why, and what to do.
    pub reason: String,
}

/// A difference between the source and its translation that needs no action but is worth
/// knowing (an output renamed, a secret moved out of the flow, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// The action's name, or [`TRIGGER`].
    pub action: String,
    /// The difference.
    pub note: String,
}

/// The outcome for one flow of the export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowReport {
    /// The flow's display name in the export.
    pub flow: String,
    /// Where in the export it came from.
    pub source: String,
    /// The coflow file written.
    pub file: String,
    /// Whether the trigger was translated.
    pub trigger_translated: bool,
    /// Actions translated (nested ones included), in written order.
    pub translated: Vec<String>,
    /// What needs a person before the flow runs like its source.
    pub attention: Vec<Attention>,
    /// Differences worth knowing.
    pub notes: Vec<Note>,
}

impl FlowReport {
    /// Records that `action` needs attention for `reason`.
    pub fn attention(&mut self, action: &str, reason: impl Into<String>) {
        self.attention.push(Attention { action: action.to_string(), reason: reason.into() });
    }

    /// Records a difference in `action`.
    pub fn note(&mut self, action: &str, note: impl Into<String>) {
        self.notes.push(Note { action: action.to_string(), note: note.into() });
    }

    /// Whether anything needs a person.
    pub fn needs_attention(&self) -> bool {
        !self.attention.is_empty()
    }

    /// Actions (not the trigger) that need attention, each once.
    fn actions_needing_attention(&self) -> usize {
        let mut names: Vec<&str> =
            self.attention.iter().map(|a| a.action.as_str()).filter(|a| *a != TRIGGER).collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "{} ({})", self.flow, self.source);
        let _ = writeln!(out, "  wrote {}", self.file);
        let total = self.translated.len() + self.actions_needing_attention();
        let trigger = if self.trigger_translated { "the trigger and " } else { "" };
        let _ = writeln!(
            out,
            "  translated: {trigger}{} of {total} action{}",
            self.translated.len(),
            plural(total)
        );
        if !self.attention.is_empty() {
            let _ = writeln!(out, "  needs attention ({}):", self.attention.len());
            for item in &self.attention {
                let _ = writeln!(out, "    {}: {}", item.action, item.reason);
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "  notes ({}):", self.notes.len());
            for item in &self.notes {
                let _ = writeln!(out, "    {}: {}", item.action, item.note);
            }
        }
    }
}

/// The outcome of one `coflow import`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// One entry per flow found in the export.
    pub flows: Vec<FlowReport>,
}

impl ImportReport {
    /// Whether any flow needs a person before it runs like its source.
    pub fn needs_attention(&self) -> bool {
        self.flows.iter().any(FlowReport::needs_attention)
    }

    /// The report as text, one block per flow and a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for flow in &self.flows {
            flow.render(&mut out);
            out.push('\n');
        }
        let waiting = self.flows.iter().filter(|f| f.needs_attention()).count();
        let ready = self.flows.len() - waiting;
        let _ = write!(out, "{} flow{} imported: {ready} ready", self.flows.len(), plural(self.flows.len()));
        if waiting > 0 {
            let _ = write!(out, ", {waiting} need{} attention", if waiting == 1 { "s" } else { "" });
        }
        out.push('\n');
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
