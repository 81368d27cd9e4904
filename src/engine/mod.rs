//! Executing one run of a compiled flow with Power Automate semantics.
