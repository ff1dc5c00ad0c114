//! What a replicator notes of its progress on each shard of a stream on this region's backend — read once when it starts, written every
//! second, merged with other replicas' so that counts never go back — and how it answers a loss (design 0026's
//! partition rule): every scope's replicated types invalidated, the loss counted once by whichever replica
//! takes its mark, and accepted by the id it is known by, so that no restart meets it again.

use std::time::{Duration, Instant};

use super::{Round, Shard, lock, unavailable};
use crate::{
    StoreError,
    store::replication::{
        Note,
        progress::{self, Progress},
    },
};

/// How often the note of progress is written.
const NOTE_EVERY: Duration = Duration::from_secs(1);

impl Shard {
    /// Reads this region's note of the stream, once: what was applied before (a group given less was made
    /// again), and the losses counted so far.
    pub(super) async fn load_progress(&self) -> Result<(), StoreError> {
        if lock(&self.progress).loaded {
            return Ok(());
        }
        let note = self
            .local
            .region_note(&self.note)
            .await
            .map_err(unavailable)?;
        let mut p = lock(&self.progress);
        match note {
            Note::Kept(noted) => {
                p.floor.clone_from(&noted.applied);
                p.noted = noted;
            }
            // Overwritten by the first note.
            Note::Foreign => tracing::warn!(
                region = self.from,
                "a note of replication progress this build did not write; started anew"
            ),
            Note::Missing => {}
        }
        p.loaded = true;
        Ok(())
    }

    /// Writes this region's note of the stream every [`NOTE_EVERY`], whether entries came or not (how long ago
    /// it was written says whether a replicator runs), and at once after a loss. A note that cannot be written
    /// is logged: a later round writes it.
    pub(super) async fn note_progress(&self) {
        {
            let mut p = lock(&self.progress);
            if p.noted_at.is_some_and(|at| at.elapsed() < NOTE_EVERY) {
                return;
            }
            p.noted_at = Some(Instant::now());
        }
        // Other replicas of this region note the same stream: the losses counted and accepted never go back.
        let noted = self.noted_now().await;
        let progress = {
            let mut p = lock(&self.progress);
            if let Some(noted) = &noted {
                p.noted.merge_losses(noted);
            }
            p.noted.at_ms = crate::codec::now_ms();
            p.noted.clone()
        };
        if let Err(e) = self.local.write_region_note(&self.note, &progress).await {
            tracing::warn!(error = %e, "replication progress not noted");
        }
    }

    /// Takes the mark of the loss known by `known_by` on this region's backend (`SET NX`, kept as long as a
    /// note): whether this replicator is the one that counts it. Counted when the mark cannot be taken for want
    /// of the backend (a loss is never left uncounted).
    pub(super) async fn mark_loss(&self, known_by: &str) -> bool {
        let local = &self.local.inner.shared;
        let Some(leases) = local.backend.leases() else {
            return true;
        };
        let key = format!("{}:loss:{known_by}", self.note);
        self.local
            .call(local, leases.acquire_lease(&key, "counted", progress::KEPT))
            .await
            .unwrap_or(true)
    }

    /// What this region's note of the stream says now (any replica's), if it can be read.
    pub(super) async fn noted_now(&self) -> Option<Progress> {
        match self.local.region_note(&self.note).await {
            Ok(Note::Kept(p)) => Some(p),
            _ => None,
        }
    }

    /// Answers a loss — entries of the stream gone before they were applied here: every scope's replicated
    /// types here invalidated, counted, logged, and noted at once.
    pub(super) async fn answer_loss(
        &self,
        what: &str,
        known_by: &str,
        round: &mut Round,
    ) -> Result<(), StoreError> {
        // Another replica of this region (or this one before a restart) may have answered it already.
        if let Some(noted) = self.noted_now().await {
            lock(&self.progress).noted.merge_losses(&noted);
        }
        if !progress::id_after(known_by, &lock(&self.progress).noted.accepted) {
            return Ok(());
        }
        let scopes = self
            .local
            .invalidate_replicated_everywhere((usize::from(self.index), usize::from(self.of)))
            .await?;
        // Replicas of this region that meet one loss at once each answer it (twice changes nothing); the one
        // that takes its mark counts it. One trim can be met twice in a round (entries given and not applied,
        // and entries never given): the round counts one loss.
        let counted = round.gaps == 0 && self.mark_loss(known_by).await;
        {
            let mut p = lock(&self.progress);
            p.noted.accepted = known_by.to_owned();
            if counted {
                p.noted.gaps = p.noted.gaps.saturating_add(1);
            }
            p.noted_at = None;
        }
        round.gaps = 1;
        tracing::warn!(
            region = self.from,
            stream = self.stream,
            lost = what,
            scopes,
            "entries of another region's stream were lost before they were applied here: not knowing what \
             they invalidated, this region invalidated the replicated types of every scope whose entries go \
             to that stream"
        );
        self.note_progress().await;
        Ok(())
    }
}
