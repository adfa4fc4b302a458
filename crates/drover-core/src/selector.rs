//! Node selection semantics: label selectors, their exact negation, and the
//! first-match partition expressed as `nodeSelectorTerms`.
//!
//! Owns: what it means for a node to belong to a group, both as the fleet defines it
//! (first matching group wins) and as the rendered affinity says it. The property
//! tests prove the two agree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::LabelSelector;

/// Operators of a node selector requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" => Op::Gt,
            "Lt" => Op::Lt,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::In => "In",
            Op::NotIn => "NotIn",
            Op::Exists => "Exists",
            Op::DoesNotExist => "DoesNotExist",
            Op::Gt => "Gt",
            Op::Lt => "Lt",
        }
    }

    pub const NAMES: [&'static str; 6] = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"];
}

/// One requirement on a node label, normalised (values sorted and unique).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Requirement {
    pub fn new(key: impl Into<String>, op: Op, values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values.into_iter().collect();
        values.sort();
        values.dedup();
        Requirement {
            key: key.into(),
            op,
            values,
        }
    }

    /// Whether a node with `labels` satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match self.op {
            Op::In => v.is_some_and(|v| self.values.contains(v)),
            Op::NotIn => v.is_none_or(|v| !self.values.contains(v)),
            Op::Exists => v.is_some(),
            Op::DoesNotExist => v.is_none(),
            Op::Gt | Op::Lt => {
                let (Some(v), Some(bound)) = (v, self.values.first()) else {
                    return false;
                };
                match (v.parse::<i64>(), bound.parse::<i64>()) {
                    (Ok(v), Ok(b)) if self.op == Op::Gt => v > b,
                    (Ok(v), Ok(b)) => v < b,
                    _ => false,
                }
            }
        }
    }

    /// The exact complement, where one exists. `Gt`/`Lt` have none: a node missing
    /// the label or carrying a non-integer value fails both `Gt n` and `Lt n+1`.
    pub fn negate(&self) -> Option<Requirement> {
        let op = match self.op {
            Op::In => Op::NotIn,
            Op::NotIn => Op::In,
            Op::Exists => Op::DoesNotExist,
            Op::DoesNotExist => Op::Exists,
            Op::Gt | Op::Lt => return None,
        };
        Some(Requirement {
            key: self.key.clone(),
            op,
            values: self.values.clone(),
        })
    }
}

/// The requirements of a selector (matchLabels become `In [v]`), sorted.
/// Unknown operators are skipped here; validation reports them.
pub fn requirements(sel: &LabelSelector) -> Vec<Requirement> {
    let mut out: Vec<Requirement> = sel
        .match_labels
        .iter()
        .map(|(k, v)| Requirement::new(k.clone(), Op::In, [v.clone()]))
        .collect();
    for e in &sel.match_expressions {
        if let Some(op) = Op::parse(&e.operator) {
            out.push(Requirement::new(
                e.key.clone(),
                op,
                e.values.iter().cloned(),
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether all requirements hold (an empty list selects every node).
pub fn matches_all(reqs: &[Requirement], labels: &BTreeMap<String, String>) -> bool {
    reqs.iter().all(|r| r.matches(labels))
}

/// Required node affinity of one group: `Terms` are ORed, requirements in a term ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Affinity {
    /// Every node (a lone catch-all group needs no affinity).
    All,
    Terms(Vec<Vec<Requirement>>),
}

impl Affinity {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Affinity::All => true,
            Affinity::Terms(terms) => terms.iter().any(|t| matches_all(t, labels)),
        }
    }
}

/// Why a group's affinity cannot be expressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AffinityError {
    /// An earlier group's requirement has no exact negation.
    NotNegatable {
        group: usize,
        requirement: Requirement,
    },
    /// The expansion would exceed the term limit.
    TooManyTerms { limit: usize },
    /// Every node the group selects belongs to an earlier group.
    Shadowed,
}

/// The affinity of group `i`: its own selector AND NOT each earlier group's, expanded
/// into disjunctive normal form (`nodeSelectorTerms`), with contradictory terms
/// dropped.
///
/// # Errors
/// See [`AffinityError`].
pub fn affinity(
    groups: &[Vec<Requirement>],
    i: usize,
    max_terms: usize,
) -> Result<Affinity, AffinityError> {
    let own = &groups[i];
    if i == 0 && own.is_empty() {
        return Ok(Affinity::All);
    }
    let mut terms: Vec<Vec<Requirement>> = vec![own.clone()];
    for (j, earlier) in groups[..i].iter().enumerate() {
        let negs: Vec<Requirement> = earlier
            .iter()
            .map(|r| {
                r.negate().ok_or_else(|| AffinityError::NotNegatable {
                    group: j,
                    requirement: r.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        if terms.len().saturating_mul(negs.len()) > max_terms.saturating_mul(4) {
            return Err(AffinityError::TooManyTerms { limit: max_terms });
        }
        let mut next = Vec::with_capacity(terms.len() * negs.len());
        for t in &terms {
            for n in &negs {
                let mut nt = t.clone();
                nt.push(n.clone());
                if let Some(nt) = simplify(nt) {
                    next.push(nt);
                }
            }
        }
        next.sort();
        next.dedup();
        if next.len() > max_terms {
            return Err(AffinityError::TooManyTerms { limit: max_terms });
        }
        terms = next;
        if terms.is_empty() {
            return Err(AffinityError::Shadowed);
        }
    }
    if terms.iter().any(|t| t.is_empty()) {
        return Ok(Affinity::All);
    }
    Ok(Affinity::Terms(terms))
}

/// Whether some node can satisfy all of `reqs` (they do not contradict each other).
pub fn satisfiable(reqs: &[Requirement]) -> bool {
    simplify(reqs.to_vec()).is_some()
}

/// Sorts and dedups a conjunction; `None` when it can match no node.
fn simplify(mut term: Vec<Requirement>) -> Option<Vec<Requirement>> {
    term.sort();
    term.dedup();
    for (a_i, a) in term.iter().enumerate() {
        for b in &term[a_i + 1..] {
            if a.key != b.key {
                continue;
            }
            let contradicts = match (a.op, b.op) {
                (Op::Exists, Op::DoesNotExist) | (Op::DoesNotExist, Op::Exists) => true,
                (Op::In, Op::DoesNotExist) | (Op::DoesNotExist, Op::In) => true,
                (Op::In, Op::NotIn) => a.values.iter().all(|v| b.values.contains(v)),
                (Op::NotIn, Op::In) => b.values.iter().all(|v| a.values.contains(v)),
                (Op::In, Op::In) => !a.values.iter().any(|v| b.values.contains(v)),
                _ => false,
            };
            if contradicts {
                return None;
            }
        }
    }
    // `k Exists` is implied by `k In [...]`; drop it to keep terms short.
    let implied: Vec<String> = term
        .iter()
        .filter(|r| r.op == Op::In)
        .map(|r| r.key.clone())
        .collect();
    term.retain(|r| !(r.op == Op::Exists && implied.contains(&r.key)));
    Some(term)
}

/// The index of the first group whose selector matches `labels`.
pub fn first_match(
    groups: &[Vec<Requirement>],
    labels: &BTreeMap<String, String>,
) -> Option<usize> {
    groups.iter().position(|g| matches_all(g, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn catch_all_after_groups_is_their_negation() {
        let groups = vec![
            vec![Requirement::new("canary", Op::In, ["true".to_string()])],
            vec![],
        ];
        let a = affinity(&groups, 1, 64).unwrap();
        assert_eq!(
            a,
            Affinity::Terms(vec![vec![Requirement::new(
                "canary",
                Op::NotIn,
                ["true".to_string()]
            )]])
        );
        assert!(a.matches(&labels(&[])));
        assert!(!a.matches(&labels(&[("canary", "true")])));
    }

    #[test]
    fn gt_cannot_be_negated() {
        let groups = vec![
            vec![Requirement::new("n", Op::Gt, ["3".to_string()])],
            vec![],
        ];
        assert!(matches!(
            affinity(&groups, 1, 64),
            Err(AffinityError::NotNegatable { group: 0, .. })
        ));
    }

    #[test]
    fn expansion_is_bounded() {
        let g = |p: &str| -> Vec<Requirement> {
            (0..4)
                .map(|i| Requirement::new(format!("{p}{i}"), Op::Exists, []))
                .collect()
        };
        let groups = vec![g("a"), g("b"), g("c"), g("d"), vec![]];
        assert_eq!(
            affinity(&groups, 4, 64),
            Err(AffinityError::TooManyTerms { limit: 64 })
        );
    }

    #[test]
    fn shadowed_group_is_reported() {
        let r = vec![Requirement::new("role", Op::In, ["x".to_string()])];
        assert_eq!(
            affinity(&[r.clone(), r], 1, 64),
            Err(AffinityError::Shadowed)
        );
    }
}
