//! `drover history` and `drover audit verify`: read the audit trail.

use std::path::PathBuf;

use super::Exit;
use crate::core::audit::{AnchorMismatch, line_hash};
use crate::core::diag::escape_control;
use crate::core::errors::chain;
use crate::settings::{AnchorSettings, AuditSettings, TrailFrom, process_env};
use crate::shell::anchor::{AnchorError, AnchorStore};
use crate::shell::audit::{AuditError, AuditLog};
use crate::shell::cluster::ClusterError;
use crate::shell::cstate::{ClusterCopy, CopyError};
use crate::shell::state::{StateError, StateStore, SyncState};
use crate::ui::table;

#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// The state directory of `drover sync`
    #[arg(long, value_name = "DIR", env = "DROVER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: HistoryFormat,
    #[command(flatten)]
    pub copy: super::StateName,
    /// The namespace of the cluster copy (default: the kubeconfig context's)
    #[arg(long, value_name = "NS")]
    pub audit_anchor_namespace: Option<String>,
    /// The kubeconfig context of the cluster holding the cluster copy
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The state directory of `drover sync`
    #[arg(long, value_name = "DIR", env = "DROVER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Check only the state directory; the cluster anchor is reported as not checked
    #[arg(long)]
    pub offline: bool,
    /// Also check the anchor in this namespace (for a trail whose records name none)
    #[arg(long, value_name = "NS")]
    pub audit_anchor_namespace: Option<String>,
    /// The kubeconfig context of the cluster holding the anchor and the cluster copy
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    #[command(flatten)]
    pub copy: super::StateName,
}

/// `good alice@example.com`, `unknown-key SHA256:…`, `unsigned`: who signed, or
/// which key did when it was not trusted.
fn signature_cell(c: &crate::core::audit::CommitRecord) -> String {
    match &c.verification {
        Some(v) => match (&v.signer, &v.key) {
            (Some(s), _) if v.is_good() => format!("{} {s}", v.status),
            (_, Some(k)) => format!("{} {k}", v.status),
            _ => v.status.to_string(),
        },
        None => c.signature.to_string(),
    }
}

/// # Errors
/// When the audit log cannot be read.
pub fn history(args: &HistoryArgs) -> anyhow::Result<Exit> {
    print_history(&AuditSettings::resolve_history(args, &process_env))
}

/// # Errors
/// See [`history`].
pub fn print_history(settings: &AuditSettings) -> anyhow::Result<Exit> {
    let trail = match read_trail(settings)? {
        Ok(t) => t,
        Err(e) => return Err(anyhow::Error::new(e).context("reading the audit trail")),
    };
    let text = trail.text;
    let records: Vec<crate::core::audit::AuditRecord> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e} (run `drover audit verify`)", trail.log.display()))?;
    match settings.format {
        HistoryFormat::Json => {
            println!("{}", crate::core::report::json::to_string_pretty(&records))
        }
        HistoryFormat::Text => {
            let style = crate::ui::stdout_style();
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    let outcome = if r.outcome.ok() {
                        style.green(r.outcome.as_str())
                    } else {
                        style.red(r.outcome.as_str())
                    };
                    let stages: Vec<String> = r
                        .stages
                        .iter()
                        .map(|s| format!("{}:{}", s.name, s.result))
                        .collect();
                    vec![
                        r.seq.to_string(),
                        r.finished_at.chars().take(19).collect(),
                        format!("{:?}", r.kind).to_lowercase(),
                        r.commit.sha.chars().take(12).collect(),
                        outcome,
                        escape_control(&signature_cell(&r.commit)),
                        format!("+{} ~{} -{}", r.plan.create, r.plan.update, r.plan.delete),
                        stages.join(" "),
                        escape_control(&r.commit.subject),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("no audit records in {}", trail.log.display());
            } else {
                print!(
                    "{}",
                    table(
                        &[
                            "SEQ",
                            "FINISHED",
                            "KIND",
                            "COMMIT",
                            "OUTCOME",
                            "SIGNATURE",
                            "PLAN",
                            "STAGES",
                            "SUBJECT"
                        ],
                        &rows
                    )
                );
            }
        }
    }
    Ok(Exit::Ok)
}

/// What one verification found: what was checked, what was not, what is wrong.
#[derive(Debug, Default)]
struct Findings {
    checked: Vec<String>,
    not_checked: Vec<String>,
    problems: Vec<Problem>,
}

/// Something `audit verify` found wrong with the trail or one of its anchors.
#[derive(Debug, thiserror::Error)]
enum Problem {
    #[error("{}", path.display())]
    ReadTrail {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Chain { source: AuditError },
    #[error(
        "{}: missing, so the last record cannot be checked against it (the state directory lost its state, or it was deleted to hide a change)",
        path.display()
    )]
    StateMissing { path: PathBuf },
    #[error(transparent)]
    LoadState { source: StateError },
    #[error(
        "{}: records no audit head although the trail has {records} record(s)",
        path.display()
    )]
    StateHeadless { path: PathBuf, records: usize },
    #[error(transparent)]
    StateHead { source: AuditError },
    #[error(
        "cannot read the anchor configmap(s) {} (pass --offline to check the state directory alone)",
        anchors.join(", ")
    )]
    ConnectCluster {
        /// `namespace/name` of each anchor it could not read.
        anchors: Vec<String>,
        source: ClusterError,
    },
    #[error(transparent)]
    ReadAnchor { source: AnchorError },
    #[error(
        "the anchor configmap {namespace}/{name} is missing, although the trail's records name it"
    )]
    AnchorMissing { namespace: String, name: String },
    #[error(
        "the anchor configmap {namespace}/{name} holds {anchored} of the trail's {records} record(s): the later ones were never anchored (written while the cluster was unreachable, or added by hand)"
    )]
    AnchorBehind {
        namespace: String,
        name: String,
        anchored: u64,
        records: usize,
    },
    #[error("the anchor configmap {namespace}/{name}")]
    AnchorMismatch {
        namespace: String,
        name: String,
        source: AnchorMismatch,
    },
}

/// Checks every anchor of the trail that can be reached: the chain itself,
/// `state.json`'s head hash (a missing or unreadable `state.json` is an error, never
/// a skip) and the cluster anchor the records name; says which it checked.
///
/// # Errors
/// Never; a broken trail is reported and exits 1.
pub fn verify(args: &VerifyArgs) -> anyhow::Result<Exit> {
    verify_trail(&AuditSettings::resolve_verify(args, &process_env))
}

/// # Errors
/// See [`verify`].
pub fn verify_trail(settings: &AuditSettings) -> anyhow::Result<Exit> {
    let mut f = Findings::default();
    if settings.anchors.offline && settings.from != TrailFrom::Local {
        anyhow::bail!("--offline reads a local export: name it with --state-dir");
    }
    let trail = match read_trail(settings)? {
        Ok(t) => t,
        Err(e) => {
            // A trail that cannot be read whole (a record object missing in the
            // middle, one drover did not write) is broken, not skipped.
            let style = crate::ui::stderr_style();
            eprintln!("{} {}", style.red("error:"), escape_control(&chain(&e)));
            return Ok(Exit::Failure);
        }
    };
    if let Some(read) = &trail.read {
        f.checked.push(read.clone());
    }
    let (text, log) = (&trail.text, &trail.log);
    if let Some(problem) = trail.problem {
        f.problems.push(problem);
    }
    let lines: Vec<&str> = text.lines().collect();
    let hashes: Vec<String> = lines.iter().map(|l| line_hash(l)).collect();
    match crate::core::audit::verify(text) {
        Ok(records) => f.checked.push(format!(
            "the hash chain of {} record(s) in {}",
            records.len(),
            log.display()
        )),
        Err(source) => f.problems.push(Problem::Chain {
            source: AuditError::Chain {
                path: log.clone(),
                source,
            },
        }),
    }
    check_state(&trail.state_path, trail.state, log, &hashes, &mut f);
    let mut anchors = settings.anchors.clone();
    if let TrailFrom::Cluster { namespace, .. } = &settings.from {
        anchors.namespace = anchors.namespace.or_else(|| namespace.clone());
    }
    check_cluster_anchors(&anchors, &lines, &hashes, &mut f)?;
    let out = |s: &str| escape_control(s);
    for c in &f.checked {
        println!("checked: {}", out(c));
    }
    for n in &f.not_checked {
        println!("not checked: {}", out(n));
    }
    if f.problems.is_empty() {
        println!(
            "audit trail intact: {} record(s) in {}",
            lines.len(),
            log.display()
        );
        return Ok(Exit::Ok);
    }
    let style = crate::ui::stderr_style();
    for p in &f.problems {
        eprintln!("{} {}", style.red("error:"), out(&chain(p)));
    }
    Ok(Exit::Failure)
}

/// `state.json`: it must exist, parse, and hold the hash of the last line.
fn check_state(
    path: &std::path::Path,
    state: Option<Result<SyncState, Problem>>,
    log: &std::path::Path,
    hashes: &[String],
    f: &mut Findings,
) {
    let state = match state {
        None => {
            f.problems.push(Problem::StateMissing {
                path: path.to_path_buf(),
            });
            return;
        }
        Some(Err(problem)) => {
            f.problems.push(problem);
            return;
        }
        Some(Ok(s)) => s,
    };
    match (state.audit_head, hashes.last()) {
        (None, None) => f
            .checked
            .push(format!("{}: no records yet", path.display())),
        (None, Some(_)) => f.problems.push(Problem::StateHeadless {
            path: path.to_path_buf(),
            records: hashes.len(),
        }),
        (Some(h), last) if last == Some(&h) => f.checked.push(format!(
            "{}: its head hash is record {}",
            path.display(),
            hashes.len()
        )),
        (Some(_), _) => f.problems.push(Problem::StateHead {
            source: AuditError::Head {
                path: log.to_path_buf(),
            },
        }),
    }
}

/// A trail as read for `history` and `audit verify`: its records' text, its
/// state, and the names to report them by.
struct Trail {
    /// Where the records were read: `audit.jsonl`, or the record objects.
    log: PathBuf,
    text: String,
    /// Where the state was read: `state.json`, or the state object.
    state_path: PathBuf,
    /// `None`: there is none.
    state: Option<Result<SyncState, Problem>>,
    /// What was read, for the report.
    read: Option<String>,
    /// The records could not be read.
    problem: Option<Problem>,
}

/// Reads the trail from the local export or the cluster copy ([`TrailFrom`]).
/// The outer error: no runtime; the inner: the cluster copy cannot be read.
fn read_trail(settings: &AuditSettings) -> anyhow::Result<Result<Trail, CopyReadError>> {
    match &settings.from {
        TrailFrom::Local => Ok(Ok(read_local(&settings.state_dir))),
        TrailFrom::Cluster {
            namespace,
            name,
            context,
        } => Ok(super::runtime()?.block_on(read_cluster(
            namespace.as_deref(),
            name,
            context.as_deref(),
        ))),
    }
}

fn read_local(d: &std::path::Path) -> Trail {
    let log = AuditLog::in_dir(d);
    let (text, problem) = match std::fs::read_to_string(&log.path) {
        Ok(t) => (t, None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), None),
        Err(source) => (
            String::new(),
            Some(Problem::ReadTrail {
                path: log.path.clone(),
                source,
            }),
        ),
    };
    let state_path = d.join("state.json");
    let state = state_path.exists().then(|| {
        StateStore::open(d)
            .and_then(|s| s.load())
            .map_err(|source| Problem::LoadState { source })
    });
    Trail {
        log: log.path,
        text,
        state_path,
        state,
        read: None,
        problem,
    }
}

/// Why the cluster copy cannot be read.
#[derive(Debug, thiserror::Error)]
enum CopyReadError {
    #[error("connecting to the cluster")]
    Connect { source: ClusterError },
    #[error(transparent)]
    Copy { source: CopyError },
}

async fn read_cluster(
    namespace: Option<&str>,
    name: &str,
    context: Option<&str>,
) -> Result<Trail, CopyReadError> {
    let cluster = crate::shell::cluster::Cluster::connect(context, "default", "")
        .await
        .map_err(|source| CopyReadError::Connect { source })?;
    let ns = namespace.map_or_else(
        || cluster.client.default_namespace().to_string(),
        str::to_string,
    );
    let copy = ClusterCopy::new(cluster.client.clone(), &ns, name, None);
    let copy_err = |source| CopyReadError::Copy { source };
    let lines = copy.records().await.map_err(copy_err)?;
    let state = copy.read_state().await.map_err(copy_err)?;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    Ok(Trail {
        log: PathBuf::from(format!(
            "the record configmaps {ns}/{}",
            crate::core::trail::record_object_name(name, 0)
                .trim_end_matches('0')
                .to_string()
                + "*"
        )),
        text,
        state_path: PathBuf::from(format!("the state configmap {ns}/{}", copy.state_object())),
        state: state.map(|s| Ok(s.state)),
        read: Some(format!(
            "read the cluster copy {ns}/{}: {} record object(s), labelled {}={name}",
            copy.state_object(),
            lines.len(),
            crate::shell::cstate::LABEL_TRAIL
        )),
        problem: None,
    })
}

/// The cluster anchors: the one the last readable record names, and the one in
/// `--audit-anchor-namespace`.
///
/// # Errors
/// When no runtime can be started to read them.
fn check_cluster_anchors(
    settings: &AnchorSettings,
    lines: &[&str],
    hashes: &[String],
    f: &mut Findings,
) -> anyhow::Result<()> {
    use crate::core::audit::{AnchorFit, AuditRecord, check_anchor};
    let Some(first) = hashes.first() else {
        f.not_checked
            .push("a cluster anchor: the trail has no records to name one".into());
        return Ok(());
    };
    let name = AnchorStore::name_for(first);
    let mut namespaces: Vec<String> = lines
        .iter()
        .rev()
        .find_map(|l| serde_json::from_str::<AuditRecord>(l).ok()?.anchor)
        .map(|a| a.namespace)
        .into_iter()
        .collect();
    if let Some(ns) = settings.namespace.clone()
        && !namespaces.contains(&ns)
    {
        namespaces.push(ns);
    }
    if namespaces.is_empty() {
        f.not_checked.push(
            "a cluster anchor: no record names one (the trail predates anchoring); pass --audit-anchor-namespace".into(),
        );
        return Ok(());
    }
    if settings.offline {
        for ns in &namespaces {
            f.not_checked
                .push(format!("the anchor configmap {ns}/{name} (--offline)"));
        }
        return Ok(());
    }
    let found = super::runtime()?.block_on(async {
        let cluster = crate::shell::cluster::Cluster::connect(
            settings.cluster.context.as_deref(),
            "default",
            "",
        )
        .await?;
        let mut out = Vec::new();
        for ns in &namespaces {
            let store = AnchorStore::new(cluster.client.clone(), ns);
            out.push((ns.clone(), store.get(&name).await));
        }
        Ok::<_, ClusterError>(out)
    });
    let found = match found {
        Ok(found) => found,
        Err(source) => {
            f.problems.push(Problem::ConnectCluster {
                anchors: namespaces.iter().map(|ns| format!("{ns}/{name}")).collect(),
                source,
            });
            return Ok(());
        }
    };
    for (namespace, got) in found {
        let name = name.clone();
        match got {
            Err(source) => f.problems.push(Problem::ReadAnchor { source }),
            Ok(None) => f.problems.push(Problem::AnchorMissing { namespace, name }),
            Ok(Some(a)) => match check_anchor(&a.state, hashes) {
                Ok(AnchorFit::Exact) => f.checked.push(format!(
                    "the anchor configmap {namespace}/{name}: it counts {} record(s) and holds the last one's hash",
                    a.state.records
                )),
                Ok(AnchorFit::Behind { anchored }) => f.problems.push(Problem::AnchorBehind {
                    namespace,
                    name,
                    anchored,
                    records: hashes.len(),
                }),
                Err(source) => f.problems.push(Problem::AnchorMismatch {
                    namespace,
                    name,
                    source,
                }),
            },
        }
    }
    Ok(())
}
