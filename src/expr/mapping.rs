//! Field mappings: `flows/mappings/*.yaml`, one target field per line, applied by `mapping()`.

use std::collections::BTreeMap;
use std::sync::Arc;

/// The mapping files a flow uses, by file name without extension.
#[derive(Debug, Clone, Default)]
pub struct Mappings {
    by_name: BTreeMap<String, Arc<Mapping>>,
}

/// One compiled mapping file.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// The target object, e.g. `Opportunity`.
    pub target: Option<String>,
}

impl Mappings {
    /// The mapping called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Mapping>> {
        self.by_name.get(name)
    }
}
