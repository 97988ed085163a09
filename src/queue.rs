//! `recast queue`: set up and inspect queues.

use anyhow::Context;
use recast_queue::{SqsQueue, SqsQueueSpec};

use crate::cli::QueueCommand;

pub async fn run(c: QueueCommand) -> anyhow::Result<()> {
    match c {
        QueueCommand::Create {
            name,
            max_receives,
            visibility_timeout,
        } => {
            let spec = SqsQueueSpec {
                max_receives,
                visibility_timeout,
            };
            let url = SqsQueue::create(&name, spec)
                .await
                .with_context(|| format!("failed to create queue {name:?}"))?;
            println!("{url}");
        }
        QueueCommand::Stats { url } => {
            let queue = recast_queue::open(&url)
                .await
                .context("failed to open the queue")?;
            let s = queue.stats().await?;
            println!(
                "visible {}  in flight {}  dead-lettered {}",
                s.visible, s.in_flight, s.dead
            );
        }
    }
    Ok(())
}
