//! The `drover` binary: parse arguments, dispatch to one command, map the outcome to
//! an exit code (0 ok, 2 changes present, 1 error).
// One call needs `unsafe` (glibc's mallopt, below); nothing else may.
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};
use drover::commands::{self, Exit};

/// drover: GitOps for Kubernetes DaemonSets. Renders a fleet repository into
/// DaemonSets, diffs and plans changes, and rolls them out node group by node group.
#[derive(Debug, Parser)]
#[command(name = "drover", version = drover::VERSION, about, max_term_width = 100)]
struct Cli {
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: drover::logging::LogFormat,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a fleet: every error with file, line, column and field
    Validate(commands::FleetArgs),
    /// Print the DaemonSets a fleet renders to
    Render(commands::render::RenderArgs),
    /// Show what changes between two commits of the fleet (offline: no cluster)
    Diff(commands::diff::DiffArgs),
    /// Show what applying a commit would change in the live cluster (read-only)
    Plan(commands::plan::PlanArgs),
    /// Roll a commit out stage by stage: canary first, gated on health
    Apply(commands::apply::ApplyArgs),
    /// Follow a branch: apply each new commit, correct drift, keep the audit trail
    Sync(Box<commands::sync::SyncArgs>),
    /// Import upstream DaemonSet manifests into a fleet, and prove the round trip
    Import(Box<commands::import::ImportArgs>),
    /// Pause the fleet: no new stage starts and no new commit is applied, by any
    /// replica or CLI, until `drover resume`
    Pause(commands::control::PauseArgs),
    /// Lift the pause
    Resume(commands::control::ResumeArgs),
    /// Roll an earlier commit out again, stage by stage, and hold the sync on it
    /// until the branch moves
    Rollback(commands::control::RollbackArgs),
    /// Show each daemon × group: commit, images, rollout, the stage in progress
    /// and its gate, the pause, the last audit outcome
    Status(commands::status::StatusArgs),
    /// Print the audit trail of `drover sync`
    History(commands::history::HistoryArgs),
    /// Check the audit trail
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print shell completions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the hash chain of the audit trail; report the first broken record
    Verify(commands::history::VerifyArgs),
}

/// One malloc arena for the whole process. glibc gives a thread that allocates
/// while another holds the main arena an arena of its own, up to eight per core,
/// and memory freed in one arena is not reused by another: a sync whose steps hop
/// between tokio's worker and blocking threads kept the sum of their peaks
/// resident (bench row 6 measured 56-68 MB from run to run for a 17 MB heap
/// peak). drover is I/O-bound; the lock one arena costs is not felt. Large blocks
/// are mapped on their own (see below).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn one_malloc_arena() {
    // SAFETY: mallopt only sets a tunable of the allocator; it is called before
    // any other thread exists, and M_ARENA_MAX with 1 is a valid setting.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        // Blocks from 256 KiB up (a LIST page's body, a stage's buffers) are
        // mapped and given back when freed. Left to itself glibc raises this
        // threshold to the largest block freed so far, after which such blocks
        // come from the heap and leave holes in it that later peaks add to.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    drover::logging::init(cli.log_format, cli.verbose);
    let result = match &cli.command {
        Command::Validate(a) => commands::validate::run(a),
        Command::Render(a) => commands::render::run(a),
        Command::Diff(a) => commands::diff::run(a),
        Command::Plan(a) => commands::plan::run(a),
        Command::Apply(a) => commands::apply::run(a),
        Command::Sync(a) => commands::sync::run(a),
        Command::Import(a) => commands::import::run(a),
        Command::Pause(a) => commands::control::pause(a),
        Command::Resume(a) => commands::control::resume(a),
        Command::Rollback(a) => commands::control::rollback(a),
        Command::Status(a) => commands::status::run(a),
        Command::History(a) => commands::history::history(a),
        Command::Audit {
            command: AuditCommand::Verify(a),
        } => commands::history::verify(a),
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "drover",
                &mut std::io::stdout(),
            );
            Ok(Exit::Ok)
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map(|()| Exit::Ok)
            .map_err(Into::into),
    };
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(e) => {
            let style = drover::ui::stderr_style();
            eprintln!(
                "{} {}",
                style.red("error:"),
                drover::core::diag::escape_control(&drover::core::errors::chain(e.as_ref()))
            );
            ExitCode::from(Exit::Failure as u8)
        }
    }
}
