//! Salesforce emulator: OAuth, sObjects, SOQL, composite and collections.
