//! Group commit for run progress: the writes of every run in flight share store transactions.
//!
//! Workers hand each write (run created, started, action finished, run finished, work item
//! completed) to the journal; one task takes everything waiting and applies it with one
//! [`Store::write_batch`]. Action results are on their way to disk as soon as they complete;
//! a worker waits only for the writes that must be durable before it moves on (the run's
//! outcome and the completion of its work item).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::store::{RunWrite, Store, StoreError};

/// Most writes applied in one transaction.
const MAX_BATCH: usize = 512;

type Reply = Option<oneshot::Sender<Result<(), Arc<StoreError>>>>;

/// The sending side, shared by all workers.
#[derive(Debug, Clone)]
pub struct Journal {
    sender: mpsc::UnboundedSender<(RunWrite, Reply)>,
    /// Writes handed to the journal so far: how busy the server is.
    written: Arc<AtomicU64>,
}

impl Journal {
    /// Starts the task that applies batches to `store`.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(apply_batches(store, receiver));
        Journal { sender, written: Arc::default() }
    }

    /// How many writes were handed to the journal since it started; it grows while runs execute.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Queues a write without waiting for it.
    pub fn send(&self, write: RunWrite) {
        self.written.fetch_add(1, Ordering::Relaxed);
        let _ = self.sender.send((write, None));
    }

    /// Queues a write and waits until it is committed.
    pub async fn write(&self, write: RunWrite) -> Result<(), Arc<StoreError>> {
        let (reply, answer) = oneshot::channel();
        self.written.fetch_add(1, Ordering::Relaxed);
        if self.sender.send((write, Some(reply))).is_err() {
            return Err(Arc::new(StoreError::Corrupt("the run journal has stopped".into())));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Arc::new(StoreError::Corrupt("the run journal has stopped".into()))))
    }
}

async fn apply_batches(store: Arc<dyn Store>, mut receiver: mpsc::UnboundedReceiver<(RunWrite, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (writes, replies): (Vec<RunWrite>, Vec<Reply>) = batch.drain(..).unzip();
        match store.write_batch(writes).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    if let Err(err) = &outcome {
                        tracing::warn!(error = %err, "a run write failed");
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(outcome.map_err(Arc::new));
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot write run progress");
                let err = Arc::new(err);
                for reply in replies.into_iter().flatten() {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}
