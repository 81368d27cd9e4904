//! Power Automate expression translator (placeholder while the module is written).
