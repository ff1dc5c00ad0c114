//! [`Progress`]: what a region notes, on its own deployment, of applying another region's stream — kept by the
//! replicator, read by whatever reports on the region (`stats`, `/metrics`, the dashboard) in any process.

use std::time::Duration;

/// How long a note is kept after it was last written: a replicator that stopped that long ago is forgotten (and
/// a group made again after that is not known to have lost anything).
pub(super) const KEPT: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a region noted of applying another region's stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The greatest id of that stream applied here (`0-0` before any).
    pub applied: String,
    /// Entries still waiting after the last read, when the other region's server could tell.
    pub behind: Option<u64>,
    /// How old the last entry applied was when applied, in ms, while entries were waiting after it (0 when
    /// caught up): how far behind in time.
    pub behind_ms: u64,
    /// Losses met (entries gone before they were applied) and answered by invalidating this region's
    /// replicated types (design 0026's partition rule).
    pub gaps: u64,
    /// When it was noted, in ms since the Unix epoch.
    pub at_ms: u64,
    /// The id the last loss answered was known by (`0-0` before any): a loss known by it or an earlier id
    /// was answered already, by any replica, before any restart.
    pub accepted: String,
}

impl Progress {
    /// Nothing applied yet.
    pub(super) fn start() -> Progress {
        Progress {
            applied: "0-0".into(),
            accepted: "0-0".into(),
            ..Progress::default()
        }
    }

    /// Takes the losses another replica counted and accepted, when they are further on: neither ever goes
    /// back.
    pub(super) fn merge_losses(&mut self, other: &Progress) {
        self.gaps = self.gaps.max(other.gaps);
        if id_after(&other.accepted, &self.accepted) {
            self.accepted.clone_from(&other.accepted);
        }
    }

    /// What the notes of a stream's shards say of the whole stream: entries behind added up, the furthest
    /// behind in time, losses added up, noted when the oldest note was (a shard whose replicator stopped shows),
    /// the greatest id applied and accepted (ids of one region's shards are dated by one clock).
    pub(super) fn combined(shards: &[Progress]) -> Progress {
        let mut out = Progress::start();
        out.at_ms = u64::MAX;
        for p in shards {
            if id_after(&p.applied, &out.applied) {
                out.applied.clone_from(&p.applied);
            }
            if id_after(&p.accepted, &out.accepted) {
                out.accepted.clone_from(&p.accepted);
            }
            out.behind_ms = out.behind_ms.max(p.behind_ms);
            out.gaps = out.gaps.saturating_add(p.gaps);
            out.at_ms = out.at_ms.min(p.at_ms);
        }
        // Unknown for the whole when unknown for a shard.
        out.behind = shards.iter().map(|p| p.behind).sum();
        if shards.is_empty() {
            out.at_ms = 0;
        }
        out
    }

    /// As kept: `applied=<id> behind=<n or -> behind_ms=<n> gaps=<n> at=<ms> accepted=<id>`.
    pub(super) fn to_text(&self) -> String {
        let behind = self
            .behind
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        format!(
            "applied={} behind={behind} behind_ms={} gaps={} at={} accepted={}",
            self.applied, self.behind_ms, self.gaps, self.at_ms, self.accepted
        )
    }

    /// A note read back: `None` for one this build did not write (it is input from a server like any other).
    pub(crate) fn parse(text: &[u8]) -> Option<Progress> {
        let text = std::str::from_utf8(text).ok()?;
        let mut progress = Progress::start();
        for part in text.split(' ') {
            let (name, value) = part.split_once('=')?;
            match name {
                "applied" if is_id(value) => progress.applied = value.to_owned(),
                "behind" if value == "-" => progress.behind = None,
                "behind" => progress.behind = Some(value.parse().ok()?),
                "behind_ms" => progress.behind_ms = value.parse().ok()?,
                "gaps" => progress.gaps = value.parse().ok()?,
                "at" => progress.at_ms = value.parse().ok()?,
                "accepted" if is_id(value) => progress.accepted = value.to_owned(),
                _ => return None,
            }
        }
        Some(progress)
    }
}

/// Another region whose stream this one applies (`regions.from`), and how far behind it this one is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegionStatus {
    /// The other region's name.
    pub name: String,
    /// What this region last noted of applying its stream; `None` before any replicator noted anything (or a
    /// note was lost).
    pub progress: Option<Progress>,
    /// How far behind in time: what was noted, plus how long ago it was noted (a replicator that stopped falls
    /// further behind with every second); `None` when nothing was noted.
    pub lag: Option<Duration>,
    /// How long ago a replicator last noted anything; `None` when nothing was noted.
    pub noted_age: Option<Duration>,
}

impl RegionStatus {
    /// `name`'s status from its note, read at `now_ms`.
    pub(crate) fn of(name: String, progress: Option<Progress>, now_ms: u64) -> RegionStatus {
        let noted_age = progress
            .as_ref()
            .map(|p| Duration::from_millis(now_ms.saturating_sub(p.at_ms)));
        let lag = progress
            .as_ref()
            .zip(noted_age)
            .map(|(p, age)| Duration::from_millis(p.behind_ms).saturating_add(age));
        RegionStatus {
            name,
            progress,
            lag,
            noted_age,
        }
    }
}

/// Whether `id` is a stream entry id, `<ms>-<seq>`.
pub(super) fn is_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(ms, seq)| {
        !ms.is_empty()
            && !seq.is_empty()
            && ms.len() <= 20
            && seq.len() <= 20
            && ms.bytes().chain(seq.bytes()).all(|b| b.is_ascii_digit())
    })
}

/// The ms part of a stream entry id.
pub(super) fn id_ms(id: &str) -> Option<u64> {
    id.split_once('-')?.0.parse().ok()
}

/// Whether stream entry id `a` is after `b` (both `<ms>-<seq>`; one that is not compares as `0-0`).
pub(super) fn id_after(a: &str, b: &str) -> bool {
    let parts = |id: &str| -> (u64, u64) {
        id.split_once('-')
            .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)))
            .unwrap_or((0, 0))
    };
    parts(a) > parts(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shards_notes_add_up_to_the_streams() {
        let shard = |applied: &str, behind: Option<u64>, behind_ms, gaps, at_ms| Progress {
            applied: applied.into(),
            behind,
            behind_ms,
            gaps,
            at_ms,
            accepted: "0-0".into(),
        };
        let whole = Progress::combined(&[
            shard("5-0", Some(3), 200, 1, 1_000),
            shard("9-1", Some(4), 50, 0, 900),
        ]);
        assert_eq!(
            (whole.applied.as_str(), whole.behind, whole.behind_ms),
            ("9-1", Some(7), 200)
        );
        // The oldest note dates the whole: a shard whose replicator stopped shows.
        assert_eq!((whole.gaps, whole.at_ms), (1, 900));
        let unknown =
            Progress::combined(&[shard("1-0", None, 0, 0, 1), shard("1-0", Some(2), 0, 0, 1)]);
        assert_eq!(unknown.behind, None);
    }

    #[test]
    fn a_note_reads_back_as_written_and_a_foreign_one_not_at_all() {
        let progress = Progress {
            applied: "1796667536194-3".into(),
            behind: Some(12),
            behind_ms: 340,
            gaps: 2,
            at_ms: 1_796_667_536_200,
            accepted: "1796667536100-0".into(),
        };
        assert_eq!(
            Progress::parse(progress.to_text().as_bytes()),
            Some(progress)
        );
        let unknown = Progress {
            behind: None,
            ..Progress::start()
        };
        assert_eq!(Progress::parse(unknown.to_text().as_bytes()), Some(unknown));
        for bad in [
            &b"applied=1-0 behind=x"[..],
            b"applied=1-0 colour=red",
            b"\xff",
            b"gaps",
        ] {
            assert_eq!(Progress::parse(bad), None, "{bad:?}");
        }
        // An id that is not one makes the note foreign (it would reach a script).
        assert_eq!(Progress::parse(b"applied=1-0'--"), None);
    }

    #[test]
    fn ids_compare_as_numbers() {
        assert!(id_after("10-0", "9-5"));
        assert!(id_after("9-10", "9-9"));
        assert!(!id_after("9-9", "9-9"));
        assert!(!id_after("x", "0-0"));
        assert_eq!(id_ms("1796667536194-3"), Some(1_796_667_536_194));
    }
}
