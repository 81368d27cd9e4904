//! Group commit for accepted events: concurrent requests share one store transaction.
//!
//! Each request hands its event to the batcher and waits; the batcher takes everything waiting
//! (up to a cap) and persists it with one [`Store::accept_events`] call, so a burst of webhook
//! deliveries costs one disk flush rather than one each. A request is answered 2xx only after
//! the transaction holding its event committed.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::{AcceptOutcome, NewEvent, Store, StoreError};

/// Most events persisted in one transaction.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<AcceptOutcome, Arc<StoreError>>>;

/// The sending side: cheap to clone, one per request handler.
#[derive(Debug, Clone)]
pub struct Batcher {
    sender: mpsc::Sender<(NewEvent, Reply)>,
}

/// Why an event could not be persisted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The store failed the transaction.
    #[error("the event could not be stored: {0}")]
    Store(Arc<StoreError>),
    /// The server is shutting down.
    #[error("the server is shutting down; deliver the event again later")]
    ShuttingDown,
}

impl Batcher {
    /// Starts the task that persists batches into `store`; `on_commit` is told how many work
    /// items each commit enqueued (to wake workers).
    pub fn start(store: Arc<dyn Store>, on_commit: impl Fn(usize) + Send + 'static) -> Self {
        let (sender, receiver) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(persist_batches(store, receiver, on_commit));
        Batcher { sender }
    }

    /// Persists one event; returns once it is committed (or known to be a duplicate).
    pub async fn accept(&self, event: NewEvent) -> Result<AcceptOutcome, AcceptError> {
        let (reply, answer) = oneshot::channel();
        self.sender.send((event, reply)).await.map_err(|_| AcceptError::ShuttingDown)?;
        match answer.await {
            Ok(result) => result.map_err(AcceptError::Store),
            Err(_) => Err(AcceptError::ShuttingDown),
        }
    }
}

async fn persist_batches(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<(NewEvent, Reply)>,
    on_commit: impl Fn(usize),
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.drain(..).unzip();
        match store.accept_events(events).await {
            Ok(outcomes) => {
                let enqueued =
                    outcomes.iter().filter(|o| matches!(o, AcceptOutcome::Accepted { .. })).count();
                on_commit(enqueued);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot persist accepted events");
                let err = Arc::new(err);
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}
