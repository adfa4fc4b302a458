//! `drover history` and `drover audit verify`: read the audit trail.

use std::path::PathBuf;

use super::Exit;
use crate::core::diag::escape_control;
use crate::settings::{AuditSettings, process_env};
use crate::shell::audit::AuditLog;
use crate::shell::state::StateStore;
use crate::ui::table;

#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    /// The state directory of `drover sync`
    #[arg(long, value_name = "DIR", env = "DROVER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: HistoryFormat,
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
    let log = AuditLog::in_dir(&settings.state_dir);
    let text = std::fs::read_to_string(&log.path).unwrap_or_default();
    let records: Vec<crate::core::audit::AuditRecord> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e} (run `drover audit verify`)", log.path.display()))?;
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
                println!("no audit records in {}", log.path.display());
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

/// # Errors
/// Never; a broken chain is reported and exits 1.
pub fn verify(args: &VerifyArgs) -> anyhow::Result<Exit> {
    verify_trail(&AuditSettings::resolve_verify(args, &process_env))
}

/// # Errors
/// See [`verify`].
pub fn verify_trail(settings: &AuditSettings) -> anyhow::Result<Exit> {
    let d = &settings.state_dir;
    let log = AuditLog::in_dir(d);
    let head = StateStore::open(d)
        .ok()
        .and_then(|s| s.load().ok())
        .and_then(|s| s.audit_head);
    match log.verify(head.as_deref()) {
        Ok(records) => {
            println!(
                "audit trail intact: {} record(s) in {}",
                records.len(),
                log.path.display()
            );
            Ok(Exit::Ok)
        }
        Err(e) => {
            eprintln!(
                "{} {}",
                crate::ui::stderr_style().red("error:"),
                escape_control(&crate::core::errors::chain(&e))
            );
            Ok(Exit::Failure)
        }
    }
}
