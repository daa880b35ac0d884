//! Produce requests with and without a producer id, appended in order.
//!
//! Plain records go to [`CommitLog::append`] as one batch. Records with a
//! producer id go to [`CommitLog::append_idempotent`] in runs (the same
//! producer, consecutive sequences); when the log answers only a prefix of
//! a run (its first records were already in the log), the rest is
//! appended again from the next sequence, so every record gets its own
//! answer.

use bytes::Bytes;
use log_core::Producer;

use crate::commit_log::{Appended, CommitLog};
use crate::error::{Error, Result};

/// One record to append, with its producer and sequence when idempotent.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) value: Bytes,
    pub(crate) producer: Option<Producer>,
}

impl Item {
    /// The item of a request's value; producer id 0 means not idempotent.
    pub(crate) fn new(value: Bytes, producer_id: u64, sequence: u64) -> Self {
        Self {
            value,
            producer: (producer_id != 0).then_some(Producer {
                id: producer_id,
                sequence,
            }),
        }
    }
}

/// One answered record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) offset: u64,
    pub(crate) duplicate: bool,
}

/// Appends every value of `producer` from its sequence, resending the
/// rest after a partial answer; one [`Appended`] per call the log
/// answered. On an error, what was answered before it comes with it.
pub(crate) async fn append_all_idempotent<L: CommitLog>(
    log: &L,
    mut values: Vec<Bytes>,
    producer: Producer,
) -> (Vec<Appended>, Option<Error>) {
    let mut answers = Vec::new();
    let mut sequence = producer.sequence;
    while !values.is_empty() {
        let at = Producer {
            id: producer.id,
            sequence,
        };
        match log.append_idempotent(values.clone(), at).await {
            Ok(appended) if appended.count > 0 && appended.count <= values.len() as u64 => {
                values.drain(..appended.count as usize);
                sequence += appended.count;
                answers.push(appended);
            }
            Ok(appended) => {
                tracing::error!(
                    ?appended,
                    "the log answered no record of an idempotent append"
                );
                return (answers, Some(Error::Internal));
            }
            Err(error) => return (answers, Some(error)),
        }
    }
    (answers, None)
}

/// Appends `items` in order: plain ones together, idempotent ones by runs
/// of one producer's consecutive sequences. One answer per item appended;
/// on an error, the answers before it and the error.
pub(crate) async fn append_items<L: CommitLog>(
    log: &L,
    items: Vec<Item>,
) -> (Vec<Answer>, Option<Error>) {
    let mut answers = Vec::with_capacity(items.len());
    let mut items = items.into_iter().peekable();
    while let Some(first) = items.next() {
        let mut values = vec![first.value];
        match first.producer {
            None => {
                while let Some(next) = items.next_if(|item| item.producer.is_none()) {
                    values.push(next.value);
                }
                let count = values.len() as u64;
                match log.append(values).await {
                    Ok(offset) => answers.extend((offset..offset + count).map(|offset| Answer {
                        offset,
                        duplicate: false,
                    })),
                    Err(error) => return (answers, Some(error)),
                }
            }
            Some(producer) => {
                let mut next_sequence = producer.sequence.checked_add(1);
                while let Some(next) = items.next_if(|item| {
                    next_sequence.is_some_and(|sequence| {
                        item.producer
                            == Some(Producer {
                                id: producer.id,
                                sequence,
                            })
                    })
                }) {
                    values.push(next.value);
                    next_sequence = next_sequence.and_then(|s| s.checked_add(1));
                }
                let (appended, error) = append_all_idempotent(log, values, producer).await;
                for run in appended {
                    answers.extend((run.first..run.first + run.count).map(|offset| Answer {
                        offset,
                        duplicate: run.duplicate,
                    }));
                }
                if error.is_some() {
                    return (answers, error);
                }
            }
        }
    }
    (answers, None)
}

/// Appends one value (`Produce`): its offset and whether it was a resend.
pub(crate) async fn append_one<L: CommitLog>(log: &L, item: Item) -> Result<Answer> {
    let (mut answers, error) = append_items(log, vec![item]).await;
    match (answers.pop(), error) {
        (_, Some(error)) => Err(error),
        (Some(answer), None) => Ok(answer),
        (None, None) => Err(Error::Internal),
    }
}
