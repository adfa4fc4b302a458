//! Settings: what each command runs with, resolved from its parsed arguments (and
//! the environment they fall back to) before any repository, file or cluster is
//! touched, in the manner of ripgrep's low/high args and uv's `settings.rs`.
//!
//! `commands/*` hold the clap arguments, what the user typed. Each command first
//! resolves them here into one settings value (defaults filled, empty values
//! dropped, combinations that cannot work refused), then runs on that value alone:
//! the shell receives settings, never clap structs. Resolving does no I/O; the
//! environment comes in as a lookup function, so tests pass their own.
//! What needs I/O to know (a token file's content, the kubeconfig's namespace,
//! the host name) stays a source here and is read by the shell when it starts.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::commands::apply::ApplyArgs;
use crate::commands::diff::DiffArgs;
use crate::commands::history::{HistoryArgs, HistoryFormat, VerifyArgs};
use crate::commands::plan::PlanArgs;
use crate::commands::render::RenderArgs;
use crate::commands::sync::SyncArgs;
use crate::commands::{ClusterArgs, FleetArgs, Format};
use crate::core::trust::Policy;
use crate::shell::clock::Clock;
use crate::shell::signature::{SignatureError, TrustConfig};

/// A lookup of environment variables (the process's, or a test's).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The process environment.
pub fn process_env(key: &str) -> Option<OsString> {
    std::env::var_os(key)
}

/// Arguments that cannot work together, found before anything is touched.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--watch needs a local repository, {repo} is not one")]
    WatchNeedsLocalRepo { repo: String },
    /// A signature policy without a trust source to check it with.
    #[error(transparent)]
    Trust { source: SignatureError },
    #[error("--state-name")]
    StateName {
        source: crate::core::trail::NameError,
    },
}

/// Where a command reads its fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    /// The fleet repository, or a directory inside it.
    pub repo: PathBuf,
    pub read: ReadFrom,
}

/// Which files of the fleet a command reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFrom {
    /// `HEAD` in a git repository; outside one, the directory's files.
    Head,
    /// This revision; an error outside a git repository.
    Rev(String),
    /// The working tree's files, including uncommitted changes.
    Worktree,
}

impl FleetSettings {
    pub fn resolve(args: &FleetArgs) -> FleetSettings {
        let read = match (&args.rev, args.worktree) {
            (_, true) => ReadFrom::Worktree,
            (Some(rev), false) => ReadFrom::Rev(rev.clone()),
            (None, false) => ReadFrom::Head,
        };
        FleetSettings {
            repo: args.repo.clone(),
            read,
        }
    }

    /// The revision asked for, if one was.
    pub fn rev(&self) -> Option<&str> {
        match &self.read {
            ReadFrom::Rev(r) => Some(r),
            ReadFrom::Head | ReadFrom::Worktree => None,
        }
    }

    pub fn worktree(&self) -> bool {
        self.read == ReadFrom::Worktree
    }
}

/// Which cluster to talk to, and what of it the fleet owns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterSettings {
    /// The kubeconfig context; `None` for the current one, or in-cluster config.
    pub context: Option<String>,
    /// Names the fleet had before it was renamed (`--previous-fleet`, sorted, each
    /// once): DaemonSets labelled with one are the fleet's too, and are replaced.
    pub previous_fleets: Vec<String>,
}

impl ClusterSettings {
    pub fn resolve(args: &ClusterArgs) -> ClusterSettings {
        let mut previous_fleets = args.previous_fleets.clone();
        previous_fleets.sort();
        previous_fleets.dedup();
        ClusterSettings {
            context: args.context.clone().filter(|c| !c.is_empty()),
            previous_fleets,
        }
    }
}

/// Whether a rollout deletes what the commit no longer renders, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneSettings {
    /// Delete DaemonSets the commit no longer renders (when the fleet allows it).
    pub prune: bool,
    /// Allow deleting more than `prune.maxDeleteFraction` of the fleet, or all of it.
    pub allow_mass_delete: bool,
}

/// `drover render`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderSettings {
    pub fleet: FleetSettings,
    /// One file per DaemonSet in this directory, instead of stdout.
    pub out: Option<PathBuf>,
}

impl RenderSettings {
    pub fn resolve(args: &RenderArgs) -> RenderSettings {
        RenderSettings {
            fleet: FleetSettings::resolve(&args.fleet),
            out: args.out.clone(),
        }
    }
}

/// `drover diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffSettings {
    pub repo: PathBuf,
    pub base: String,
    pub head: String,
    pub format: Format,
    /// A node list for the blast radius.
    pub nodes: Option<PathBuf>,
    /// What the head's signature is verified against (shown, never enforced).
    pub trust: TrustConfig,
}

impl DiffSettings {
    /// # Errors
    /// None in practice: the policy is `off`, which needs no trust source.
    pub fn resolve(args: &DiffArgs) -> Result<DiffSettings, SettingsError> {
        Ok(DiffSettings {
            repo: args.repo.clone(),
            base: args.base.clone(),
            head: args.head.clone(),
            format: args.format,
            nodes: args.nodes.clone(),
            trust: TrustConfig::new(
                args.allowed_signers.clone(),
                args.trusted_keys.clone(),
                Some(Policy::Off),
            )
            .map_err(|source| SettingsError::Trust { source })?,
        })
    }
}

/// `drover plan`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSettings {
    pub fleet: FleetSettings,
    pub cluster: ClusterSettings,
    pub format: Format,
    /// Plan again on every change of the fleet's files or commits.
    pub watch: bool,
    /// Dry-run every desired DaemonSet, even those already current.
    pub dry_run_all: bool,
    /// The time freeze windows are shown for.
    pub clock: Clock,
}

impl PlanSettings {
    pub fn resolve(args: &PlanArgs, env: Env<'_>) -> PlanSettings {
        PlanSettings {
            fleet: FleetSettings::resolve(&args.fleet),
            cluster: ClusterSettings::resolve(&args.cluster),
            format: args.format,
            watch: args.watch,
            dry_run_all: args.dry_run_all,
            clock: Clock::from_env(env),
        }
    }
}

/// Whether `apply` asks before it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// Ask on a terminal (a script without one is not asked).
    Ask,
    /// `--yes`: never ask.
    Assumed,
}

/// `drover apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplySettings {
    pub fleet: FleetSettings,
    pub cluster: ClusterSettings,
    pub confirm: Confirm,
    pub prune: PruneSettings,
    /// `--override-freeze REASON`.
    pub freeze_override: Option<String>,
    /// The time freeze windows are judged at.
    pub clock: Clock,
}

impl ApplySettings {
    pub fn resolve(args: &ApplyArgs, env: Env<'_>) -> ApplySettings {
        ApplySettings {
            fleet: FleetSettings::resolve(&args.fleet),
            cluster: ClusterSettings::resolve(&args.cluster),
            confirm: if args.yes {
                Confirm::Assumed
            } else {
                Confirm::Ask
            },
            prune: PruneSettings {
                prune: !args.no_prune,
                allow_mass_delete: args.allow_mass_delete,
            },
            freeze_override: args.freeze.override_freeze.clone(),
            clock: Clock::from_env(env),
        }
    }
}

/// Where an https token comes from; read when `sync` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// This file's content, trimmed.
    File(PathBuf),
    /// This environment variable, when set and not empty.
    Env(String),
}

impl TokenSource {
    pub fn env_var(&self) -> Option<&str> {
        match self {
            TokenSource::Env(v) => Some(v),
            TokenSource::File(_) => None,
        }
    }

    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            TokenSource::File(f) => Some(f),
            TokenSource::Env(_) => None,
        }
    }
}

/// How `sync` authenticates to the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub token: TokenSource,
    pub ssh_key: Option<PathBuf>,
    /// When set, an ssh host key must be listed in this known_hosts file.
    pub known_hosts: Option<PathBuf>,
}

/// The branch `sync` follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSettings {
    /// A URL (https://, ssh://, file://) or a local path.
    pub url: String,
    pub branch: String,
    /// The fleet's directory inside the repository (empty: its root).
    pub subdir: PathBuf,
    pub credentials: Credentials,
}

/// Leader election among replicas of `sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    pub name: String,
    /// `None`: the kubeconfig context's namespace (known once connected).
    pub namespace: Option<String>,
    /// `None`: `<hostname>-<pid>` (read when `sync` starts).
    pub identity: Option<String>,
    pub duration: Duration,
}

/// `drover sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSettings {
    pub source: SourceSettings,
    /// How often to fetch and check for drift.
    pub interval: Duration,
    /// Where the mirror, state.json and audit.jsonl live.
    pub state_dir: PathBuf,
    /// One iteration, then exit.
    pub once: bool,
    /// Also run on every change of a local repository's refs.
    pub watch: bool,
    /// Serve /metrics, /healthz and /livez here.
    pub listen: Option<String>,
    /// Accept push webhooks on `listen`, with the secret in this file.
    pub webhook_secret_file: Option<PathBuf>,
    /// Apply a new head only with an approved plan digest.
    pub require_approved_plan: bool,
    /// `--override-freeze REASON`.
    pub freeze_override: Option<String>,
    /// The time freeze windows are judged at.
    pub clock: Clock,
    /// `Some` with `--leader-elect`: run only while holding the Lease.
    pub lease: Option<LeaseSettings>,
    pub prune: PruneSettings,
    pub cluster: ClusterSettings,
    /// Where a new audit trail is anchored (`--audit-anchor-namespace`, else
    /// `POD_NAMESPACE`); `None`: the kubeconfig context's namespace (known once
    /// connected). A trail whose records name their anchor keeps that one.
    pub audit_anchor_namespace: Option<String>,
    /// `--state-name`: the cluster copy of the state and the audit trail is
    /// `drover-state-<name>` and `drover-trail-<name>-<seq>` in the anchor namespace.
    pub state_name: String,
    /// Trust sources and the signature policy (resolved: `head` when a source is
    /// given and no policy asked for). The sources are read when `sync` starts.
    pub trust: TrustConfig,
}

impl SyncSettings {
    /// # Errors
    /// [`SettingsError::WatchNeedsLocalRepo`] for `--watch` with a remote URL;
    /// [`SettingsError::Trust`] for a signature policy without a trust source.
    pub fn resolve(args: &SyncArgs, env: Env<'_>) -> Result<SyncSettings, SettingsError> {
        if args.watch && is_remote_url(&args.repo) {
            return Err(SettingsError::WatchNeedsLocalRepo {
                repo: args.repo.clone(),
            });
        }
        let token = match &args.token_file {
            Some(f) => TokenSource::File(f.clone()),
            None => TokenSource::Env(args.token_env.clone()),
        };
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Ok(SyncSettings {
            source: SourceSettings {
                url: args.repo.clone(),
                branch: args.branch.clone(),
                subdir: args.path.clone().unwrap_or_default(),
                credentials: Credentials {
                    token,
                    ssh_key: args.ssh_key.clone(),
                    known_hosts: args.ssh_known_hosts.clone(),
                },
            },
            interval: args.interval,
            state_dir: state_dir(args.state_dir.as_ref(), env),
            once: args.once,
            watch: args.watch,
            listen: args.listen.clone(),
            webhook_secret_file: args.webhook_secret_file.clone(),
            require_approved_plan: args.require_approved_plan,
            freeze_override: args.freeze.override_freeze.clone(),
            clock: Clock::from_env(env),
            lease: args.leader_elect.then(|| LeaseSettings {
                name: args.lease_name.clone(),
                namespace: non_empty(&args.lease_namespace),
                identity: non_empty(&args.identity),
                duration: args.lease_duration,
            }),
            prune: PruneSettings {
                prune: !args.no_prune,
                allow_mass_delete: args.allow_mass_delete,
            },
            cluster: ClusterSettings::resolve(&args.cluster),
            audit_anchor_namespace: non_empty(&args.audit_anchor_namespace),
            state_name: {
                crate::core::trail::check_name(&args.copy.name)
                    .map_err(|source| SettingsError::StateName { source })?;
                args.copy.name.clone()
            },
            trust: TrustConfig::new(
                args.allowed_signers.clone(),
                args.trusted_keys.clone(),
                args.require_signed,
            )
            .map_err(|source| SettingsError::Trust { source })?,
        })
    }
}

/// `drover history` and `drover audit verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    pub state_dir: PathBuf,
    pub format: HistoryFormat,
    /// Which cluster anchors `audit verify` reads (`history` reads none).
    pub anchors: AnchorSettings,
    /// Where the trail is read: the cluster copy unless a state directory was
    /// given (`--state-dir` or `DROVER_STATE_DIR`), which is then read as a local
    /// export.
    pub from: TrailFrom,
}

/// Which copy of the audit trail `history` and `audit verify` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrailFrom {
    /// `state.json` and `audit.jsonl` in [`AuditSettings::state_dir`].
    Local,
    /// The cluster copy `--state-name` in `--audit-anchor-namespace` (`None`:
    /// the kubeconfig context's namespace).
    Cluster {
        namespace: Option<String>,
        name: String,
        context: Option<String>,
    },
}

fn trail_from(
    state_dir: Option<&PathBuf>,
    namespace: Option<&String>,
    name: &str,
    context: Option<&String>,
) -> TrailFrom {
    match state_dir {
        Some(_) => TrailFrom::Local,
        None => TrailFrom::Cluster {
            namespace: namespace.cloned().filter(|n| !n.is_empty()),
            name: name.to_string(),
            context: context.cloned().filter(|c| !c.is_empty()),
        },
    }
}

/// Which cluster anchors of the audit trail `audit verify` reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnchorSettings {
    /// `--offline`: none; each is reported as not checked.
    pub offline: bool,
    /// `--audit-anchor-namespace`: also the anchor in this namespace (for a trail
    /// whose records name none).
    pub namespace: Option<String>,
    /// The cluster that holds them.
    pub cluster: ClusterSettings,
}

impl AuditSettings {
    pub fn resolve_history(args: &HistoryArgs, env: Env<'_>) -> AuditSettings {
        AuditSettings {
            state_dir: state_dir(args.state_dir.as_ref(), env),
            format: args.format,
            anchors: AnchorSettings {
                offline: true,
                ..AnchorSettings::default()
            },
            from: trail_from(
                args.state_dir.as_ref(),
                args.audit_anchor_namespace.as_ref(),
                &args.copy.name,
                args.context.as_ref(),
            ),
        }
    }

    pub fn resolve_verify(args: &VerifyArgs, env: Env<'_>) -> AuditSettings {
        AuditSettings {
            state_dir: state_dir(args.state_dir.as_ref(), env),
            format: HistoryFormat::Text,
            anchors: AnchorSettings {
                offline: args.offline,
                namespace: args
                    .audit_anchor_namespace
                    .clone()
                    .filter(|n| !n.is_empty()),
                cluster: ClusterSettings {
                    context: args.context.clone().filter(|c| !c.is_empty()),
                    previous_fleets: Vec::new(),
                },
            },
            from: trail_from(
                args.state_dir.as_ref(),
                args.audit_anchor_namespace.as_ref(),
                &args.copy.name,
                args.context.as_ref(),
            ),
        }
    }
}

/// Whether `repo` names a remote that only git can reach (not a local path or a
/// `file://` URL). Decided from the text alone.
fn is_remote_url(repo: &str) -> bool {
    repo.contains("://") && !repo.starts_with("file://")
}

/// The state directory: as given (`--state-dir` or `DROVER_STATE_DIR`, which clap
/// reads), else `$XDG_STATE_HOME/drover`, else `~/.local/state/drover`.
pub fn state_dir(given: Option<&PathBuf>, env: Env<'_>) -> PathBuf {
    if let Some(d) = given {
        return d.clone();
    }
    if let Some(x) = env("XDG_STATE_HOME") {
        return PathBuf::from(x).join("drover");
    }
    let home = env("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/drover")
}

/// `drover status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSettings {
    pub fleet: FleetSettings,
    pub cluster: ClusterSettings,
    /// The sync's state directory, when given; status shows only the cluster's
    /// side without it.
    pub state_dir: Option<PathBuf>,
    /// Without a state directory: the sync's cluster copy, by name and namespace
    /// (`None`: the kubeconfig context's).
    pub state_name: String,
    pub state_namespace: Option<String>,
    pub format: crate::commands::status::StatusFormat,
    /// The time freeze windows are shown for.
    pub clock: Clock,
}

impl StatusSettings {
    pub fn resolve(args: &crate::commands::status::StatusArgs, env: Env<'_>) -> StatusSettings {
        StatusSettings {
            fleet: FleetSettings::resolve(&args.fleet),
            cluster: ClusterSettings::resolve(&args.cluster),
            state_dir: args.state_dir.clone(),
            state_name: args.copy.name.clone(),
            state_namespace: args
                .audit_anchor_namespace
                .clone()
                .filter(|n| !n.is_empty()),
            format: args.format,
            clock: Clock::from_env(env),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The CLI's subcommands whose settings these tests resolve.
    #[derive(Debug, Parser)]
    enum Cli {
        Sync(Box<SyncArgs>),
        Apply(ApplyArgs),
        Plan(PlanArgs),
        History(HistoryArgs),
        Verify(VerifyArgs),
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("drover").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn sync(args: &[&str], env: &[(&str, &str)]) -> Result<SyncSettings, SettingsError> {
        let Cli::Sync(mut a) = parse(&[&["sync"], args].concat()) else {
            unreachable!()
        };
        // clap also reads these from the process environment; the tests' own
        // environment is `env`.
        let given = |flag: &str| args.contains(&flag);
        if !given("--state-dir") {
            a.state_dir = None;
        }
        if !given("--lease-namespace") {
            a.lease_namespace = None;
        }
        if !given("--identity") {
            a.identity = None;
        }
        if !given("--audit-anchor-namespace") {
            a.audit_anchor_namespace = None;
        }
        if !given("--ssh-key") {
            a.ssh_key = None;
        }
        if !given("--ssh-known-hosts") {
            a.ssh_known_hosts = None;
        }
        if !given("--allowed-signers") {
            a.allowed_signers = None;
        }
        if !given("--trusted-keys") {
            a.trusted_keys = None;
        }
        if !given("--require-signed") {
            a.require_signed = None;
        }
        let env: Vec<(String, OsString)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        SyncSettings::resolve(&a, &lookup)
    }

    #[test]
    fn sync_settings_take_every_argument_and_fill_the_defaults() {
        let s = sync(
            &[
                "--repo",
                "https://git.example/fleet.git",
                "--path",
                "clusters/eu1",
                "--interval",
                "2m",
                "--state-dir",
                "/var/lib/drover",
                "--once",
                "--listen",
                "127.0.0.1:9090",
                "--no-prune",
                "--leader-elect",
                "--lease-duration",
                "9s",
                "--token-file",
                "/run/token",
            ],
            &[("HOME", "/home/op")],
        )
        .unwrap();
        assert_eq!(s.source.url, "https://git.example/fleet.git");
        assert_eq!(s.source.branch, "main");
        assert_eq!(s.source.subdir, PathBuf::from("clusters/eu1"));
        assert_eq!(
            s.source.credentials.token,
            TokenSource::File("/run/token".into())
        );
        assert_eq!(s.interval, Duration::from_secs(120));
        assert_eq!(s.state_dir, PathBuf::from("/var/lib/drover"));
        assert!(s.once && !s.watch);
        assert_eq!(s.listen.as_deref(), Some("127.0.0.1:9090"));
        assert_eq!(
            s.prune,
            PruneSettings {
                prune: false,
                allow_mass_delete: false
            }
        );
        assert_eq!(
            s.lease,
            Some(LeaseSettings {
                name: "drover".into(),
                namespace: None,
                identity: None,
                duration: Duration::from_secs(9),
            })
        );
        assert_eq!(s.cluster, ClusterSettings::default());
    }

    #[test]
    fn without_leader_election_there_is_no_lease_and_the_token_comes_from_the_environment() {
        let s = sync(&["--repo", "/srv/fleet"], &[]).unwrap();
        assert_eq!(s.lease, None);
        assert_eq!(
            s.source.credentials.token,
            TokenSource::Env("DROVER_GIT_TOKEN".into())
        );
        assert_eq!(s.interval, Duration::from_secs(30));
        assert_eq!(s.source.subdir, PathBuf::new());
    }

    #[test]
    fn the_state_directory_falls_back_to_xdg_then_home() {
        let xdg = sync(
            &["--repo", "r"],
            &[("XDG_STATE_HOME", "/x"), ("HOME", "/home/op")],
        )
        .unwrap();
        assert_eq!(xdg.state_dir, PathBuf::from("/x/drover"));
        let home = sync(&["--repo", "r"], &[("HOME", "/home/op")]).unwrap();
        assert_eq!(
            home.state_dir,
            PathBuf::from("/home/op/.local/state/drover")
        );
        let nothing = sync(&["--repo", "r"], &[]).unwrap();
        assert_eq!(nothing.state_dir, PathBuf::from("./.local/state/drover"));
    }

    #[test]
    fn empty_lease_namespace_and_identity_mean_the_defaults() {
        let s = sync(
            &[
                "--repo",
                "r",
                "--leader-elect",
                "--lease-namespace",
                "",
                "--identity",
                "",
            ],
            &[],
        )
        .unwrap();
        let lease = s.lease.unwrap();
        assert_eq!((lease.namespace, lease.identity), (None, None));
        let s = sync(
            &[
                "--repo",
                "r",
                "--leader-elect",
                "--lease-namespace",
                "ops",
                "--identity",
                "replica-a",
            ],
            &[],
        )
        .unwrap();
        let lease = s.lease.unwrap();
        assert_eq!(lease.namespace.as_deref(), Some("ops"));
        assert_eq!(lease.identity.as_deref(), Some("replica-a"));
    }

    #[test]
    fn an_empty_audit_anchor_namespace_means_the_kubeconfig_contexts() {
        let s = sync(&["--repo", "r", "--audit-anchor-namespace", ""], &[]).unwrap();
        assert_eq!(s.audit_anchor_namespace, None);
        let s = sync(&["--repo", "r"], &[]).unwrap();
        assert_eq!(s.audit_anchor_namespace, None);
        let s = sync(
            &["--repo", "r", "--audit-anchor-namespace", "drover-system"],
            &[],
        )
        .unwrap();
        assert_eq!(s.audit_anchor_namespace.as_deref(), Some("drover-system"));
    }

    #[test]
    fn watching_a_remote_url_is_refused_before_anything_is_fetched() {
        for url in [
            "https://git.example/fleet.git",
            "ssh://git@git.example/fleet",
        ] {
            let r = sync(&["--repo", url, "--watch"], &[]);
            assert!(
                matches!(&r, Err(SettingsError::WatchNeedsLocalRepo { repo }) if repo == url),
                "{r:?}"
            );
        }
        for local in ["/srv/fleet", "file:///srv/fleet", "../fleet"] {
            assert!(sync(&["--repo", local, "--watch"], &[]).unwrap().watch);
        }
    }

    #[test]
    fn a_trust_source_makes_head_the_default_policy_and_a_policy_without_one_is_refused() {
        assert_eq!(
            sync(&["--repo", "r"], &[]).unwrap().trust.policy,
            Policy::Off
        );
        let s = sync(
            &["--repo", "r", "--allowed-signers", "/etc/drover/signers"],
            &[],
        )
        .unwrap();
        assert_eq!(s.trust.policy, Policy::Head);
        assert_eq!(
            s.trust.allowed_signers.as_deref(),
            Some(std::path::Path::new("/etc/drover/signers"))
        );
        let s = sync(
            &[
                "--repo",
                "r",
                "--trusted-keys",
                "/etc/drover/keys.asc",
                "--require-signed",
                "all",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(s.trust.policy, Policy::All);
        let r = sync(&["--repo", "r", "--require-signed", "head"], &[]);
        assert!(matches!(r, Err(SettingsError::Trust { .. })), "{r:?}");
    }

    #[test]
    fn apply_settings_turn_flags_into_what_they_mean() {
        let Cli::Apply(a) = parse(&["apply", "--repo", "f", "--rev", "HEAD~1", "-y"]) else {
            unreachable!()
        };
        let s = ApplySettings::resolve(&a, &|_| None);
        assert_eq!(s.fleet.read, ReadFrom::Rev("HEAD~1".into()));
        assert_eq!(s.fleet.rev(), Some("HEAD~1"));
        assert!(!s.fleet.worktree());
        assert_eq!(s.confirm, Confirm::Assumed);
        assert_eq!(
            s.prune,
            PruneSettings {
                prune: true,
                allow_mass_delete: false
            }
        );
        let Cli::Apply(a) = parse(&[
            "apply",
            "--worktree",
            "--no-prune",
            "--allow-mass-delete",
            "--context",
            "prod",
        ]) else {
            unreachable!()
        };
        let s = ApplySettings::resolve(&a, &|_| None);
        assert_eq!(s.fleet.read, ReadFrom::Worktree);
        assert_eq!(s.fleet.repo, PathBuf::from("."));
        assert_eq!(s.confirm, Confirm::Ask);
        assert_eq!(
            s.prune,
            PruneSettings {
                prune: false,
                allow_mass_delete: true
            }
        );
        assert_eq!(s.cluster.context.as_deref(), Some("prod"));
        assert!(s.cluster.previous_fleets.is_empty());
    }

    #[test]
    fn previous_fleet_names_are_collected_once_each_and_a_name_that_is_no_label_is_refused() {
        let Cli::Plan(a) = parse(&[
            "plan",
            "--previous-fleet",
            "old-b",
            "--previous-fleet",
            "old-a",
            "--previous-fleet",
            "old-b",
        ]) else {
            unreachable!()
        };
        let s = PlanSettings::resolve(&a, &|_| None);
        assert_eq!(s.cluster.previous_fleets, ["old-a", "old-b"]);
        for bad in ["Old", "a,b", "x)", "-a", ""] {
            let flag = format!("--previous-fleet={bad}");
            let e = Cli::try_parse_from(["drover", "plan", flag.as_str()]).unwrap_err();
            assert!(e.to_string().contains("is not a fleet name"), "{bad}: {e}");
        }
    }

    #[test]
    fn plan_settings_read_head_by_default() {
        let Cli::Plan(a) = parse(&["plan", "--format", "json", "--watch"]) else {
            unreachable!()
        };
        let s = PlanSettings::resolve(&a, &|_| None);
        assert_eq!(s.fleet.read, ReadFrom::Head);
        assert_eq!(s.fleet.rev(), None);
        assert_eq!(s.format, Format::Json);
        assert!(s.watch && !s.dry_run_all);
    }

    #[test]
    fn history_settings_share_the_state_directory_rule() {
        let Cli::History(mut a) = parse(&["history", "--format", "json"]) else {
            unreachable!()
        };
        a.state_dir = None; // clap also reads DROVER_STATE_DIR
        let env = |k: &str| (k == "HOME").then(|| OsString::from("/home/op"));
        let s = AuditSettings::resolve_history(&a, &env);
        assert_eq!(s.state_dir, PathBuf::from("/home/op/.local/state/drover"));
        assert_eq!(s.format, HistoryFormat::Json);
        assert!(s.anchors.offline, "history reads no cluster anchor");
    }

    #[test]
    fn verify_settings_take_the_anchor_flags_and_empty_means_unset() {
        let Cli::Verify(mut a) = parse(&[
            "verify",
            "--audit-anchor-namespace",
            "drover-system",
            "--context",
            "prod",
        ]) else {
            unreachable!()
        };
        a.state_dir = None;
        let env = |_: &str| None;
        let s = AuditSettings::resolve_verify(&a, &env);
        assert_eq!(
            s.anchors,
            AnchorSettings {
                offline: false,
                namespace: Some("drover-system".into()),
                cluster: ClusterSettings {
                    context: Some("prod".into()),
                    previous_fleets: Vec::new(),
                },
            }
        );
        let Cli::Verify(a) = parse(&[
            "verify",
            "--offline",
            "--audit-anchor-namespace",
            "",
            "--context",
            "",
        ]) else {
            unreachable!()
        };
        let s = AuditSettings::resolve_verify(&a, &env);
        assert!(s.anchors.offline);
        assert_eq!(s.anchors.namespace, None);
        assert_eq!(s.anchors.cluster.context, None);
    }
}

/// `drover pause` and `drover resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSettings {
    pub fleet: FleetSettings,
    pub cluster: ClusterSettings,
    pub action: crate::commands::control::ControlAction,
    /// Who we are when the cluster cannot say (`$USER`, else `unknown`).
    pub local_user: String,
}

impl ControlSettings {
    pub fn resolve(
        fleet: &FleetArgs,
        cluster: &ClusterArgs,
        action: crate::commands::control::ControlAction,
        env: Env<'_>,
    ) -> ControlSettings {
        let local_user = env("USER")
            .map(|u| u.to_string_lossy().into_owned())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "unknown".to_string());
        ControlSettings {
            fleet: FleetSettings::resolve(fleet),
            cluster: ClusterSettings::resolve(cluster),
            action,
            local_user: format!("local user {local_user}"),
        }
    }
}
