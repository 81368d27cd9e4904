//! Finding what a template refers to (actions, variables, functions), for the compiler's checks.

use super::template::{References, Template};

/// Names `template` refers to.
pub fn collect(template: &Template) -> References {
    let _ = template;
    References::default()
}
