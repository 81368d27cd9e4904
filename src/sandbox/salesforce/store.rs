//! The org's records in memory, with an undo log so composite and collection calls can roll back.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::ids::{RecordId, make_id};
use super::schema::Schema;
use super::value::Val;

/// One stored record: values in the object's field order.
#[derive(Debug, Clone)]
pub struct Record {
    /// Field values, index-aligned with `ObjectDef::fields`.
    pub values: Box<[Val]>,
    /// When the record went to the recycle bin.
    pub deleted_at: Option<i64>,
}

/// All records of one object, ordered by id (= creation order for generated ids).
#[derive(Debug, Default)]
pub struct Table {
    /// Records by id, live and deleted.
    pub records: BTreeMap<RecordId, Record>,
    /// External-id and unique fields: field index → lowercased value → live record ids.
    indexes: HashMap<usize, HashMap<Box<str>, Vec<RecordId>>>,
}

impl Table {
    /// Live records whose indexed field equals `value` (case-insensitive).
    pub fn lookup(&self, field: usize, value: &str) -> &[RecordId] {
        self.indexes
            .get(&field)
            .and_then(|index| index.get(value.to_lowercase().as_str()))
            .map_or(&[], Vec::as_slice)
    }

    /// A live (not deleted) record.
    pub fn live(&self, id: &RecordId) -> Option<&Record> {
        self.records.get(id).filter(|r| r.deleted_at.is_none())
    }

    fn unindex(&mut self, id: &RecordId, record: &Record) {
        if record.deleted_at.is_some() {
            return;
        }
        for (field, index) in &mut self.indexes {
            let Some(key) = record.values[*field].as_str() else { continue };
            let key = key.to_lowercase();
            if let Some(ids) = index.get_mut(key.as_str()) {
                ids.retain(|x| x != id);
                if ids.is_empty() {
                    index.remove(key.as_str());
                }
            }
        }
    }

    fn index(&mut self, id: RecordId, record: &Record) {
        if record.deleted_at.is_some() {
            return;
        }
        for (field, index) in &mut self.indexes {
            let Some(key) = record.values[*field].as_str() else { continue };
            index.entry(key.to_lowercase().into_boxed_str()).or_default().push(id);
        }
    }
}

/// Everything the org stores.
#[derive(Debug)]
pub struct Db {
    /// The data model.
    pub schema: Arc<Schema>,
    /// One table per schema object.
    pub tables: Vec<Table>,
    /// The API user every write is attributed to.
    pub user_id: Arc<str>,
    /// When the org's delete log starts.
    pub created_at: i64,
    next_number: u64,
}

/// First record number handed out, so generated ids look like a live org's.
const FIRST_NUMBER: u64 = 3_000_000_000;

impl Db {
    /// An empty org.
    pub fn new(schema: Arc<Schema>, user_id: Arc<str>, created_at: i64) -> Db {
        let tables = schema
            .objects
            .iter()
            .map(|object| {
                let indexes = object
                    .fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.external_id || f.unique)
                    .map(|(i, _)| (i, HashMap::new()))
                    .collect();
                Table { records: BTreeMap::new(), indexes }
            })
            .collect();
        Db { schema, tables, user_id, created_at, next_number: FIRST_NUMBER }
    }

    /// A fresh id for a new record of `object`.
    pub fn new_id(&mut self, object: usize) -> Option<RecordId> {
        self.next_number += 1;
        make_id(&self.schema.objects[object].key_prefix, self.next_number)
    }

    /// The object an id belongs to, from its prefix.
    pub fn object_of(&self, id: &RecordId) -> Option<usize> {
        self.schema.object_by_prefix(id.prefix())
    }

    /// A live record anywhere in the org.
    pub fn find_live(&self, id: &RecordId) -> Option<(usize, &Record)> {
        let object = self.object_of(id)?;
        self.tables[object].live(id).map(|r| (object, r))
    }

    /// Stores a record without undo (seed data and resets).
    pub fn put_raw(&mut self, object: usize, id: RecordId, record: Record) {
        let table = &mut self.tables[object];
        if let Some(old) = table.records.remove(&id) {
            table.unindex(&id, &old);
        }
        table.index(id, &record);
        table.records.insert(id, record);
    }

    fn replace(&mut self, object: usize, id: RecordId, record: Option<Record>) -> Option<Record> {
        let table = &mut self.tables[object];
        let old = table.records.remove(&id);
        if let Some(old) = &old {
            table.unindex(&id, old);
        }
        if let Some(record) = record {
            table.index(id, &record);
            table.records.insert(id, record);
        }
        old
    }
}

/// A write transaction: every change is logged so it can be undone.
pub struct Txn<'a> {
    /// The data being changed.
    pub db: &'a mut Db,
    undo: Vec<(usize, RecordId, Option<Record>)>,
}

impl<'a> Txn<'a> {
    /// Starts a transaction.
    pub fn new(db: &'a mut Db) -> Self {
        Txn { db, undo: Vec::new() }
    }

    /// Writes a record, remembering what it replaced.
    pub fn put(&mut self, object: usize, id: RecordId, record: Record) {
        let old = self.db.replace(object, id, Some(record));
        self.undo.push((object, id, old));
    }

    /// A point to roll back to.
    pub fn savepoint(&self) -> usize {
        self.undo.len()
    }

    /// Undoes every change made after `savepoint`.
    pub fn rollback_to(&mut self, savepoint: usize) {
        while self.undo.len() > savepoint {
            let Some((object, id, old)) = self.undo.pop() else { break };
            self.db.replace(object, id, old);
        }
    }
}
