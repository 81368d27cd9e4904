//! Loopback emulators of the Partner Center and Salesforce REST APIs, with fault injection.

pub mod faults;
pub mod partner_center;
pub mod salesforce;
