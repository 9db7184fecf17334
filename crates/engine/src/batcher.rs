//! Queries that arrive together are embedded together. One worker thread takes every query
//! waiting when it becomes free and embeds them in one forward pass, as text-embeddings-
//! inference batches: a lone query goes at once (no timer to wait out), and under load each
//! pass carries the queries that arrived during the previous one, so the model's weights are
//! read once per batch rather than once per query.

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mnemo_embed::{EmbedError, Embedder};

use crate::{EngineError, Result};

/// Queries in one forward pass at most.
const MAX_BATCH: usize = 64;
/// How long a batch waits for the queries expected with it (see `work`): short beside one
/// forward pass (about 5 ms for one query on 2 cores).
const GATHER: Duration = Duration::from_millis(2);
/// Queries waiting for the worker at most; a caller beyond waits to hand its query over.
const MAX_WAITING: usize = 1024;

/// The worker, as errors name it.
const WORKER: &str = "query embedding";

type Answer = std::result::Result<Vec<f32>, EmbedError>;

struct Waiting {
    text: String,
    answer: SyncSender<Answer>,
}

/// The worker and the way to it; started by the first query.
pub struct QueryBatcher {
    embedder: Arc<Embedder>,
    queue: Mutex<Option<SyncSender<Waiting>>>,
}

impl QueryBatcher {
    pub fn new(embedder: Arc<Embedder>) -> Self {
        Self {
            embedder,
            queue: Mutex::new(None),
        }
    }

    /// `text`'s vector, embedded with whatever other queries are waiting.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        let (answer, receive) = mpsc::sync_channel(1);
        let waiting = Waiting {
            text: text.to_owned(),
            answer,
        };
        self.sender()?
            .send(waiting)
            .map_err(|_| EngineError::WorkerPanicked(WORKER))?;
        receive
            .recv()
            .map_err(|_| EngineError::WorkerPanicked(WORKER))?
            .map_err(EngineError::Embed)
    }

    fn sender(&self) -> Result<SyncSender<Waiting>> {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = queue.as_ref() {
            return Ok(sender.clone());
        }
        let (sender, receiver) = mpsc::sync_channel(MAX_WAITING);
        let embedder = Arc::clone(&self.embedder);
        std::thread::Builder::new()
            .name("mnemo-query-embed".into())
            .spawn(move || work(&embedder, &receiver))
            .map_err(EngineError::JobThread)?;
        *queue = Some(sender.clone());
        Ok(sender)
    }
}

/// Until every sender is gone (the engine dropped): one batch per turn, of all that waits.
/// Clients answered together come back together, a few microseconds apart: the worker, free
/// at once, would take the first alone and the others one pass later. So when the last batch
/// held several queries, it waits up to `GATHER` for as many before it starts; a lone client
/// (last batch of one) never waits.
fn work(embedder: &Embedder, queue: &Receiver<Waiting>) {
    let mut expected = 1;
    while let Ok(first) = queue.recv() {
        let deadline = Instant::now() + GATHER;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => {
                    batch.push(next);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if batch.len() >= expected || left.is_zero() {
                break;
            }
            match queue.recv_timeout(left) {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        expected = batch.len();
        answer(embedder, batch);
    }
}

fn answer(embedder: &Embedder, batch: Vec<Waiting>) {
    let texts: Vec<&str> = batch.iter().map(|waiting| waiting.text.as_str()).collect();
    match embedder.embed(&texts) {
        Ok(embeddings) => {
            for (waiting, row) in batch.iter().zip(embeddings.rows()) {
                // A caller that went away (its request timed out) needs no answer.
                let _ = waiting.answer.send(Ok(row.to_vec()));
            }
        }
        // One query's fault (an empty text) must not fail the others: each goes alone, and
        // gets its own answer.
        Err(_) if batch.len() > 1 => {
            for waiting in batch {
                let own = embedder
                    .embed(&[waiting.text.as_str()])
                    .map(|embeddings| embeddings.row(0).to_vec());
                let _ = waiting.answer.send(own);
            }
        }
        Err(err) => {
            if let Some(waiting) = batch.into_iter().next() {
                let _ = waiting.answer.send(Err(err));
            }
        }
    }
}
