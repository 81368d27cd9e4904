//! What the co-sell solution needs from the systems it connects, and the check of it.
//!
//! The flows in `flows/` read and write Salesforce fields that a stock org does not have, and
//! rely on a Partner Center webhook registered for their events. This module knows those
//! needs: [`usage`] reads them from the flow and mapping files (with [`soql`] for queries),
//! [`metadata`] reads the SFDX source that installs the Salesforce customisation
//! (`flows/salesforce/`), [`doctor`] holds a live org and tenant against both, and [`status`]
//! counts how far the two systems are in step.
//!
//! It sits above `connectors` and `flow` rather than inside `connectors`: a connector knows one
//! system's API and nothing of flows, while these checks are about what a folder of flows
//! expects of its connections.

pub mod doctor;
pub mod metadata;
pub mod soql;
pub mod status;
pub mod usage;
