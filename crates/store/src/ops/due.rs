//! What the sweeper must look at: agents whose lease lapsed, locks whose
//! TTL ran out, handoffs past their deadline.

use crate::clock::Clock;
use crate::coord::{CoordOutput, Due, DueAt};
use crate::error::Result;
use crate::objects::{AGENT, HANDOFF, LOCK};
use crate::tx::Tx;

pub(crate) async fn due_at(tx: &mut impl Tx, _clock: &dyn Clock, DueAt { now }: DueAt) -> Result<CoordOutput> {
    let agents = tx.due_objects(AGENT, now).await?;
    let locks = tx
        .due_objects(LOCK, now)
        .await?
        .into_iter()
        .filter_map(|id| id.split_once('/').map(|(c, n)| (c.to_owned(), n.to_owned())))
        .collect();
    let handoffs = tx.due_objects(HANDOFF, now).await?;
    Ok(CoordOutput::Due(Due { agents, locks, handoffs }))
}
