//! How a status is shown: a CSS class for colour, and always an icon and a word, so no status is
//! told by colour alone.

use serde::Serialize;

use crate::store::RunStatus;

/// A status as displayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Badge {
    /// CSS class (`s-failed`, ...).
    pub class: &'static str,
    /// A symbol that reads without colour.
    pub icon: &'static str,
    /// The status in words.
    pub label: &'static str,
}

impl Badge {
    /// An action that has not run (yet).
    pub const NOT_RUN: Badge = Badge { class: "s-notrun", icon: "○", label: "not run" };

    /// An action of a run still going that has no result yet.
    pub const PENDING: Badge = Badge { class: "s-pending", icon: "◌", label: "pending" };

    /// The badge of a run status.
    pub fn for_run(status: RunStatus) -> Badge {
        match status {
            RunStatus::Queued => Badge { class: "s-queued", icon: "…", label: "queued" },
            RunStatus::Running => Badge { class: "s-running", icon: "▶", label: "running" },
            RunStatus::Succeeded => Self::for_action("succeeded"),
            RunStatus::Failed => Self::for_action("failed"),
            RunStatus::Cancelled => Self::for_action("cancelled"),
            RunStatus::TimedOut => Self::for_action("timed_out"),
        }
    }

    /// The badge of an action status as recorded (`succeeded`, `failed`, `skipped`,
    /// `timed_out`, `cancelled`); anything else shows as not run.
    pub fn for_action(status: &str) -> Badge {
        match status {
            "succeeded" => Badge { class: "s-succeeded", icon: "✔", label: "succeeded" },
            "failed" => Badge { class: "s-failed", icon: "✘", label: "failed" },
            "skipped" => Badge { class: "s-skipped", icon: "↷", label: "skipped" },
            "timed_out" => Badge { class: "s-timed_out", icon: "⏱", label: "timed out" },
            "cancelled" => Badge { class: "s-cancelled", icon: "⊘", label: "cancelled" },
            _ => Self::NOT_RUN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_distinct_word_and_icon() {
        let badges: Vec<Badge> =
            RunStatus::ALL.into_iter().map(Badge::for_run).chain([Badge::NOT_RUN, Badge::PENDING]).collect();
        for (i, a) in badges.iter().enumerate() {
            for b in &badges[i + 1..] {
                assert_ne!(a.label, b.label);
                assert_ne!(a.icon, b.icon);
                assert_ne!(a.class, b.class);
            }
        }
        assert_eq!(Badge::for_action("skipped").label, "skipped");
        assert_eq!(Badge::for_action("whatever"), Badge::NOT_RUN);
    }
}
