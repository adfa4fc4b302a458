//! `drover sync`: the reconciler. Follows a branch, rolls out each new commit stage
//! by stage, corrects drift on an interval, serves /metrics and /healthz, and stops
//! cleanly on SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use backon::BackoffBuilder as _;
use tokio::sync::watch;

use super::{ClusterArgs, Exit, runtime};
use crate::core::trust::Policy;
use crate::settings::{SyncSettings, process_env};
use crate::shell::apply::Outcome;
use crate::shell::audit::AuditLog;
use crate::shell::cluster::Cluster;
use crate::shell::cstate::ClusterCopy;
use crate::shell::gitsync::{Mirror, RemoteSpec};
use crate::shell::lease::{Elector, LeaseConfig, default_identity, lead, term};
use crate::shell::metrics::{Metrics, serve_with_hooks};
use crate::shell::progress::{BarProgress, LogProgress, Progress, Published};
use crate::shell::state::StateStore;
use crate::shell::sync::{BACKOFF, BACKOFF_CAP, Iteration, Syncer};
use crate::shell::webhook::{Hooks, read_secret};

#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// The fleet repository: a URL (https://, ssh://, file://) or a local path
    #[arg(long, value_name = "URL|PATH")]
    pub repo: String,
    /// The branch to follow
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The fleet's directory inside the repository
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// How often to fetch and check for drift
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Where the git mirror, state.json and audit.jsonl live
    #[arg(long, value_name = "DIR", env = "DROVER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// One iteration, then exit (0 applied or nothing to do, 1 failed or refused)
    #[arg(long)]
    pub once: bool,
    /// With a local repository: also run on every change of its refs
    #[arg(long)]
    pub watch: bool,
    /// Serve /metrics, /healthz and /livez here
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Also accept push webhooks on --listen (POST /hooks/github, /hooks/gitlab,
    /// /hooks/generic), authenticated with the secret in this file
    #[arg(
        long,
        value_name = "FILE",
        env = "DROVER_WEBHOOK_SECRET_FILE",
        requires = "listen"
    )]
    pub webhook_secret_file: Option<PathBuf>,
    /// Apply a new head only when its `Drover-Plan:` trailer is the digest `drover
    /// diff` printed for exactly the change from the last applied commit
    #[arg(long, env = "DROVER_REQUIRE_APPROVED_PLAN")]
    pub require_approved_plan: bool,
    #[command(flatten)]
    pub freeze: super::FreezeArgs,
    /// Environment variable holding an https token
    #[arg(long, default_value = "DROVER_GIT_TOKEN", value_name = "VAR")]
    pub token_env: String,
    /// File holding an https token
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// ssh private key file
    #[arg(long, value_name = "FILE", env = "DROVER_SSH_KEY")]
    pub ssh_key: Option<PathBuf>,
    /// OpenSSH known_hosts file: ssh host keys must be listed there
    #[arg(long, value_name = "FILE", env = "DROVER_SSH_KNOWN_HOSTS")]
    pub ssh_known_hosts: Option<PathBuf>,
    /// Do not delete DaemonSets the commit no longer renders
    #[arg(long)]
    pub no_prune: bool,
    /// Allow deleting more than prune.maxDeleteFraction of the fleet
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// OpenSSH allowed-signers file (`principals [options] key`): commits signed
    /// with these SSH keys (git's gpg.format ssh) are trusted
    #[arg(long, value_name = "FILE", env = "DROVER_ALLOWED_SIGNERS")]
    pub allowed_signers: Option<PathBuf>,
    /// Armoured OpenPGP public keys (`gpg --export --armor`): commits signed with
    /// these keys are trusted
    #[arg(long, value_name = "FILE", env = "DROVER_TRUSTED_KEYS")]
    pub trusted_keys: Option<PathBuf>,
    /// Which commits must be signed by a trusted key before a head is applied:
    /// `head`, `all` (every commit since the last applied one) or `off`. Default:
    /// `head` when a trust source is given, else `off`
    #[arg(long, value_name = "POLICY", env = "DROVER_REQUIRE_SIGNED", value_parser = parse_policy)]
    pub require_signed: Option<Policy>,
    /// Run only while holding a coordination.k8s.io Lease, so that of several
    /// replicas one writes; the others wait and take over when it goes away
    #[arg(long)]
    pub leader_elect: bool,
    /// The Lease's name
    #[arg(
        long,
        default_value = "drover",
        value_name = "NAME",
        requires = "leader_elect"
    )]
    pub lease_name: String,
    /// The Lease's namespace (default: the kubeconfig context's namespace, else
    /// `default`)
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a Lease lasts unrenewed; it is renewed every third of it
    #[arg(long, default_value = "15s", value_parser = parse_lease_duration, requires = "leader_elect")]
    pub lease_duration: Duration,
    /// Where the audit trail's anchor lives (a ConfigMap drover-audit-<id>): the
    /// namespace the trail's records name, else this (default: the kubeconfig
    /// context's namespace, else `default`)
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    pub audit_anchor_namespace: Option<String>,
    #[command(flatten)]
    pub copy: super::StateName,
    /// This replica's name in the Lease (default: <hostname>-<pid>)
    #[arg(long, value_name = "ID", env = "POD_NAME")]
    pub identity: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    match s {
        "off" => Ok(Policy::Off),
        "head" => Ok(Policy::Head),
        "all" => Ok(Policy::All),
        _ => Err(format!("`{s}`: expected head, all or off")),
    }
}

fn parse_lease_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(3) {
        return Err(format!("a lease must last at least 3s (is {s})"));
    }
    Ok(d)
}

/// Parses `30s`, `2m`, `1h30m`.
///
/// # Errors
/// A message for clap.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::core::syntax::duration(s)
}

/// # Errors
/// Start-up failures (arguments that cannot work, state directory, kubeconfig,
/// listen address); with `--once`, the iteration's failure.
pub fn run(args: &SyncArgs) -> anyhow::Result<Exit> {
    sync(SyncSettings::resolve(args, &process_env)?)
}

/// The reconciler, on resolved settings.
///
/// # Errors
/// See [`run`].
pub fn sync(settings: SyncSettings) -> anyhow::Result<Exit> {
    let state_dir = &settings.state_dir;
    let trust = &settings.trust;
    trust.refuse_inside(Path::new(&settings.source.url))?;
    // Read the trust sources once now, so a typo fails at start, not at the first push.
    trust.load().context("reading the trust sources")?;
    let store = StateStore::open(state_dir)
        .with_context(|| format!("opening the state directory {}", state_dir.display()))?;
    let source = &settings.source;
    let creds = &source.credentials;
    let token = RemoteSpec::resolve_token(creds.token.env_var(), creds.token.file())?;
    let remote = RemoteSpec {
        url: source.url.clone(),
        branch: source.branch.clone(),
        token,
        ssh_key: creds.ssh_key.clone(),
        known_hosts: creds.known_hosts.clone(),
    };
    runtime()?.block_on(async {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let lease_stop = stop_tx.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stop requested; finishing the current step");
            let _ = stop_tx.send(true);
        });
        let metrics = Arc::new(Metrics::default());
        // Wake-ups of the loop before its interval: --watch and push webhooks.
        let (wake, mut triggers) = tokio::sync::mpsc::channel::<()>(1);
        let hooks = settings.webhook_secret_file.as_ref().map(|path| {
            read_secret(path).map(|s| Arc::new(Hooks::new(s, wake.clone(), metrics.clone())))
        });
        let hooks = hooks.transpose()?;
        let server = match &settings.listen {
            Some(addr) => Some(
                serve_with_hooks(addr, metrics.clone(), hooks)
                    .await
                    .with_context(|| format!("listening on {addr}"))?,
            ),
            None => None,
        };
        let cluster = Cluster::connect(settings.cluster.context.as_deref(), "default", "")
            .await
            .context("connecting to the cluster")?;
        let anchor_namespace = settings
            .audit_anchor_namespace
            .clone()
            .unwrap_or_else(|| cluster.client.default_namespace().to_string());
        let anchor =
            crate::shell::anchor::TrailAnchor::new(cluster.client.clone(), &anchor_namespace);
        let mirror = Mirror::open(&state_dir.join("repo.git"))?;
        let shown: Box<dyn Progress> = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Box::new(BarProgress::default())
        } else {
            Box::new(LogProgress::default())
        };
        // progress.json in the state directory, for `drover status`.
        let progress: Box<dyn Progress> =
            Box::new(Published::new(shown, state_dir.join("progress.json")));
        let mut syncer = Syncer {
            remote,
            subdir: source.subdir.clone(),
            prune: settings.prune,
            trust: settings.trust.clone(),
            require_approved_plan: settings.require_approved_plan,
            freeze_override: settings.freeze_override.clone(),
            clock: settings.clock.clone(),
            config_maps_left: None,
            previous_fleets: settings.cluster.previous_fleets.clone(),
            cluster,
            metrics: metrics.clone(),
            progress,
            store,
            audit: AuditLog::in_dir(state_dir),
            anchor,
            copy: None,
            mirror,
            stop: stop_rx.clone(),
        };
        let _watcher = if settings.watch {
            let git_dir = git2::Repository::discover(&source.url)
                .map(|r| r.path().to_path_buf())
                .with_context(|| {
                    format!(
                        "--watch needs a local repository, {} is not one",
                        source.url
                    )
                })?;
            let (w, mut rx) = crate::shell::watch::watch(&[git_dir], Duration::from_millis(300))?;
            let wake = wake.clone();
            tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    let _ = wake.try_send(());
                }
            });
            Some(w)
        } else {
            None
        };
        drop(wake);
        let leadership = if let Some(lease) = &settings.lease {
            let cfg = LeaseConfig {
                name: lease.name.clone(),
                namespace: lease
                    .namespace
                    .clone()
                    .unwrap_or_else(|| syncer.cluster.client.default_namespace().to_string()),
                identity: lease.identity.clone().unwrap_or_else(default_identity),
                duration: lease.duration,
            };
            let elector = Elector::new(syncer.cluster.client.clone(), cfg.clone());
            match lead(elector, metrics.clone(), stop_rx.clone(), lease_stop).await {
                Some(l) => Some((l, cfg)),
                None => return Ok(Exit::Ok),
            }
        } else {
            None
        };
        // The state and the trail live in the cluster; a leader's writes are fenced
        // by its term of the Lease, a single process's by resourceVersion alone.
        let fence = match &leadership {
            Some((_, cfg)) => Some(
                term(&syncer.cluster.client, cfg)
                    .await
                    .context("reading the term of the leader lease")?,
            ),
            None => None,
        };
        let leadership = leadership.map(|(l, _)| l);
        let mut copy = ClusterCopy::new(
            syncer.cluster.client.clone(),
            &anchor_namespace,
            &settings.state_name,
            fence,
        );
        copy.source = Some(format!(
            "{} {} {}",
            source.url,
            source.branch,
            source.subdir.display()
        ));
        syncer.copy = Some(Arc::new(copy));
        let result = loop_forever(&mut syncer, &settings, stop_rx, &mut triggers).await;
        if let Some(l) = leadership {
            l.step_down(&metrics)
                .await
                .context("exiting so that this replica restarts as a follower")?;
        }
        if let Some(s) = server {
            s.shutdown().await;
        }
        result
    })
}

async fn loop_forever(
    syncer: &mut Syncer,
    settings: &SyncSettings,
    mut stop: watch::Receiver<bool>,
    triggers: &mut tokio::sync::mpsc::Receiver<()>,
) -> anyhow::Result<Exit> {
    let mut retry = BACKOFF.build();
    loop {
        if *stop.borrow() {
            return Ok(Exit::Ok);
        }
        let wait = match syncer.iterate().await {
            // Stopping is an outcome: the cursor is saved, the rollout resumes on restart.
            Ok(Iteration::Stopped { .. }) => return Ok(Exit::Ok),
            Ok(it) => {
                syncer.metrics.healthy();
                syncer.metrics.held(
                    matches!(it, Iteration::Paused { .. }),
                    matches!(it, Iteration::Frozen { .. }),
                );
                retry = BACKOFF.build();
                let failed = report(&it);
                if settings.once {
                    return Ok(if failed { Exit::Failure } else { Exit::Ok });
                }
                settings.interval
            }
            Err(e) => {
                let message = crate::core::errors::chain(&e);
                syncer.metrics.error(e.kind(), &message);
                tracing::error!(error = %crate::core::diag::escape_control(&message), kind = e.kind(), "sync iteration failed");
                if settings.once || e.is_fenced() {
                    // Fenced: a later leader owns the state; stop, as on losing the Lease.
                    return Err(e.into());
                }
                if e.is_transient() {
                    retry
                        .next()
                        .unwrap_or(BACKOFF_CAP)
                        .min(settings.interval.max(Duration::from_secs(1)))
                } else {
                    settings.interval
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            Some(()) = triggers.recv() => {}
            _ = stop.changed() => {}
        }
    }
}

/// Logs an iteration; returns whether it failed.
fn report(it: &Iteration) -> bool {
    match it {
        // Logged where it stopped; the loop ends before it reports a stop.
        Iteration::Stopped { .. } => false,
        Iteration::Paused { commit, why } => {
            tracing::warn!(%commit, "paused: {}", crate::core::diag::escape_control(why));
            false
        }
        Iteration::Frozen { commit, why, drift } => {
            let what = if *drift {
                "drift correction"
            } else {
                "new commit"
            };
            tracing::warn!(%commit, "{what} waits: {}", crate::core::diag::escape_control(why));
            false
        }
        Iteration::Idle => {
            tracing::info!("up to date");
            false
        }
        Iteration::WaitingForNewCommit(c) => {
            tracing::warn!(commit = %c, "the branch head failed before; waiting for a new commit");
            false
        }
        Iteration::Rolled {
            commit,
            outcome,
            drift,
        } => {
            let what = if *drift { "drift correction" } else { "commit" };
            match outcome {
                Outcome::Applied | Outcome::NoOp => {
                    tracing::info!(%commit, outcome = outcome.as_str(), "{what} done")
                }
                _ => tracing::error!(%commit, outcome = outcome.as_str(), "{what} failed"),
            }
            !outcome.ok()
        }
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
