//! The sync state and the audit trail as cluster objects: the pure decisions.
//!
//! `drover sync` keeps its state (last applied and bad commit, rollout cursor,
//! audit head) in one ConfigMap, [`state_object_name`], and each audit record in a
//! ConfigMap of its own, [`record_object_name`], created once and never updated.
//! The shell reads and writes them; this module names them, decides whether a
//! state write is fenced off ([`may_write`]), and how the cluster copy and a local
//! cache are brought together ([`merge`]).
//!
//! Why one object per record and not chunks: a record is created exactly once
//! under its sequence number, so two writers can never both append record n (the
//! second create is refused by the API server), and nothing is ever rewritten.
//! A record is a few kilobytes; [`MAX_RECORD_BYTES`] keeps each object well under
//! the API server's 1 MiB limit.

/// The schema of the state object's data.
pub const STATE_SCHEMA: &str = "drover.dev/state/v1";
/// The schema of an audit record object's data.
pub const RECORD_SCHEMA: &str = "drover.dev/audit-record/v1";
/// The largest audit line stored as one object (the API server refuses objects
/// over 1 MiB; the rest is left for metadata).
pub const MAX_RECORD_BYTES: usize = 900 * 1024;
/// The longest `--state-name`: `drover-trail-<name>-<10 digits>` stays a valid
/// object name and label value.
pub const MAX_NAME_LEN: usize = 40;

/// The state object of the trail `name`.
pub fn state_object_name(name: &str) -> String {
    format!("drover-state-{name}")
}

/// The object holding record `seq` (1-based) of the trail `name`; zero-padded so
/// that names sort in record order.
pub fn record_object_name(name: &str, seq: u64) -> String {
    format!("drover-trail-{name}-{seq:010}")
}

/// Why a trail name cannot name cluster objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the state name is empty")]
    Empty,
    #[error("the state name `{name}` is longer than {MAX_NAME_LEN} characters")]
    TooLong { name: String },
    #[error(
        "the state name `{name}` must be lowercase letters, digits and `-`, starting and ending with a letter or digit"
    )]
    Invalid { name: String },
}

/// Checks that `name` makes valid object names and label values.
///
/// # Errors
/// When it does not.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { name: name.into() });
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(NameError::Invalid { name: name.into() })
    }
}

/// Who may write the state object: the Lease holder identity and the Lease's
/// transition count when it took the Lease (its term). A write carries the
/// writer's fence, and the object keeps the last writer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub holder: String,
    pub term: i64,
}

/// Why a state write is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceRefusal {
    #[error(
        "the state was written by leader {holder} in lease term {term}, after this replica's term {mine}: this replica is no longer the leader"
    )]
    Stale {
        holder: String,
        term: i64,
        mine: i64,
    },
    #[error(
        "the state was written by {holder} in lease term {term}, the term this replica holds: two holders in one term"
    )]
    SameTerm { holder: String, term: i64 },
    #[error(
        "the state was written by leader {holder} (lease term {term}); without --leader-elect this process does not write it"
    )]
    Elected { holder: String, term: i64 },
}

/// Whether a writer holding `mine` (`None`: no leader election) may overwrite a
/// state object last written under `stored`. A later term always may (the new
/// leader claims the object); the same term only by the same holder; an earlier
/// term never. A process without leader election may write only an object no
/// leader wrote: mixing the two on one state is refused, not guessed at.
///
/// # Errors
/// The refusal, naming who holds the object.
pub fn may_write(stored: Option<&Fence>, mine: Option<&Fence>) -> Result<(), FenceRefusal> {
    match (stored, mine) {
        (None, _) => Ok(()),
        (Some(s), None) => Err(FenceRefusal::Elected {
            holder: s.holder.clone(),
            term: s.term,
        }),
        (Some(s), Some(m)) if m.term > s.term => Ok(()),
        (Some(s), Some(m)) if m.term == s.term && m.holder == s.holder => Ok(()),
        (Some(s), Some(m)) if m.term == s.term => Err(FenceRefusal::SameTerm {
            holder: s.holder.clone(),
            term: s.term,
        }),
        (Some(s), Some(m)) => Err(FenceRefusal::Stale {
            holder: s.holder.clone(),
            term: s.term,
            mine: m.term,
        }),
    }
}

/// How the cluster's records and a local cache come together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// The cache is the cluster copy or a prefix of it: rewrite the cache from the
    /// cluster.
    FromCluster,
    /// The cluster copy is a prefix of the cache (a trail from before the cluster
    /// copy, or records whose upload was interrupted): upload the cache's lines
    /// from this index on, then rewrite the cache.
    Upload { from: usize },
}

/// The cache and the cluster copy disagree on a record both have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "record {seq} differs between the cluster copy and the local cache; drover does not pick one (restore one of them, or move the local state directory away)"
)]
pub struct Diverged {
    pub seq: usize,
}

/// Decides how to bring the cluster's record lines and the cache's together.
/// Nothing is ever dropped: one must be a prefix of the other.
///
/// # Errors
/// [`Diverged`] with the first record they disagree on.
pub fn merge<C: AsRef<str>, L: AsRef<str>>(cluster: &[C], local: &[L]) -> Result<Merge, Diverged> {
    if let Some(i) = cluster
        .iter()
        .zip(local)
        .position(|(c, l)| c.as_ref() != l.as_ref())
    {
        return Err(Diverged { seq: i + 1 });
    }
    if local.len() > cluster.len() {
        Ok(Merge::Upload {
            from: cluster.len(),
        })
    } else {
        Ok(Merge::FromCluster)
    }
}

/// Why the records read from the cluster are not one trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GapError {
    #[error("record object {seq} is missing (records 1 to {last} are expected)")]
    Missing { seq: u64, last: u64 },
    #[error("record object {seq} appears more than once")]
    Duplicate { seq: u64 },
}

/// Orders records read from the cluster by sequence number and checks there is
/// exactly one for each of 1..=n. Returns the lines in order.
///
/// # Errors
/// The first missing or duplicated sequence number.
pub fn in_order(mut records: Vec<(u64, String)>) -> Result<Vec<String>, GapError> {
    records.sort_by_key(|(seq, _)| *seq);
    let last = records.last().map_or(0, |(s, _)| *s);
    let mut out = Vec::with_capacity(records.len());
    for (i, (seq, line)) in records.into_iter().enumerate() {
        let expected = i as u64 + 1;
        if seq < expected {
            return Err(GapError::Duplicate { seq });
        }
        if seq > expected {
            return Err(GapError::Missing {
                seq: expected,
                last,
            });
        }
        out.push(line);
    }
    Ok(out)
}

/// A record line too large for one object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit record {seq} is {bytes} bytes, over the {MAX_RECORD_BYTES} bytes one object holds")]
pub struct TooLarge {
    pub seq: u64,
    pub bytes: usize,
}

/// Checks that a record line fits one object.
///
/// # Errors
/// [`TooLarge`].
pub fn check_size(seq: u64, line: &str) -> Result<(), TooLarge> {
    if line.len() > MAX_RECORD_BYTES {
        Err(TooLarge {
            seq,
            bytes: line.len(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(holder: &str, term: i64) -> Fence {
        Fence {
            holder: holder.into(),
            term,
        }
    }

    #[test]
    fn a_later_term_claims_the_state_and_an_earlier_one_is_refused() {
        let a1 = fence("a", 1);
        let b2 = fence("b", 2);
        assert_eq!(may_write(None, Some(&a1)), Ok(()));
        assert_eq!(may_write(Some(&a1), Some(&a1)), Ok(()));
        assert_eq!(may_write(Some(&a1), Some(&b2)), Ok(()));
        assert_eq!(
            may_write(Some(&b2), Some(&a1)),
            Err(FenceRefusal::Stale {
                holder: "b".into(),
                term: 2,
                mine: 1
            })
        );
        assert_eq!(
            may_write(Some(&a1), Some(&fence("b", 1))),
            Err(FenceRefusal::SameTerm {
                holder: "a".into(),
                term: 1
            })
        );
    }

    #[test]
    fn without_leader_election_only_a_state_no_leader_wrote_is_written() {
        assert_eq!(may_write(None, None), Ok(()));
        assert!(matches!(
            may_write(Some(&fence("a", 3)), None),
            Err(FenceRefusal::Elected { term: 3, .. })
        ));
    }

    #[test]
    fn a_cache_behind_the_cluster_is_rewritten_and_one_ahead_is_uploaded() {
        assert_eq!(merge(&["a", "b"], &["a"]), Ok(Merge::FromCluster));
        assert_eq!(
            merge::<&str, &str>(&["a", "b"], &[]),
            Ok(Merge::FromCluster)
        );
        assert_eq!(merge(&["a", "b"], &["a", "b"]), Ok(Merge::FromCluster));
        assert_eq!(
            merge(&["a"], &["a", "b", "c"]),
            Ok(Merge::Upload { from: 1 })
        );
        assert_eq!(
            merge::<&str, &str>(&[], &["a"]),
            Ok(Merge::Upload { from: 0 })
        );
        assert_eq!(
            merge(&["a", "x"], &["a", "b", "c"]),
            Err(Diverged { seq: 2 })
        );
    }

    #[test]
    fn records_read_in_any_order_come_back_in_sequence_and_a_gap_is_named() {
        let got = in_order(vec![(2, "b".into()), (1, "a".into()), (3, "c".into())]).unwrap();
        assert_eq!(got, ["a", "b", "c"]);
        assert_eq!(
            in_order(vec![(1, "a".into()), (3, "c".into())]),
            Err(GapError::Missing { seq: 2, last: 3 })
        );
        assert_eq!(
            in_order(vec![(1, "a".into()), (1, "a".into())]),
            Err(GapError::Duplicate { seq: 1 })
        );
        assert_eq!(in_order(vec![]), Ok(vec![]));
    }

    #[test]
    fn object_names_sort_in_record_order_and_bad_state_names_are_refused() {
        assert_eq!(
            record_object_name("drover", 7),
            "drover-trail-drover-0000000007"
        );
        assert!(record_object_name("x", 9) < record_object_name("x", 10));
        assert_eq!(state_object_name("edge"), "drover-state-edge");
        assert_eq!(check_name("edge-1"), Ok(()));
        assert!(matches!(check_name("Edge"), Err(NameError::Invalid { .. })));
        assert!(matches!(check_name("-a"), Err(NameError::Invalid { .. })));
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert!(matches!(
            check_name(&"a".repeat(41)),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn a_record_over_the_object_limit_is_refused() {
        assert_eq!(check_size(1, "{}"), Ok(()));
        let big = "x".repeat(MAX_RECORD_BYTES + 1);
        assert_eq!(
            check_size(4, &big),
            Err(TooLarge {
                seq: 4,
                bytes: MAX_RECORD_BYTES + 1
            })
        );
    }
}
