//! `drover import`: bring upstream DaemonSet manifests (files, directories, standard
//! input, or a namespace of a cluster) into a fleet, and prove the round trip.
//!
//! The work is the core's (`drover_core::import`); this reads the input, prints the
//! report and writes the files. Nothing is written when a round trip fails.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams};
use serde_json::Value as JsonValue;

use super::{ClusterArgs, Exit};
use crate::core::diag::escape_control;
use crate::core::import::{
    COMPANIONS_APPLIED, CONFIG_FILES_APPLIED, DaemonReport, ImportOptions, Imported, Manifest,
    Report, RoundTrip, import, read_manifests, strip_server_fields,
};
use crate::core::limits::LIMITS;

/// The most input an import reads, in bytes: upstream bundles with their CRDs run to
/// a few megabytes.
const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// Manifests to import: files, directories (their *.yaml, *.yml and *.json,
    /// recursively), or `-` for standard input (e.g. `helm template ... | drover import -`)
    #[arg(value_name = "FILE|DIR|-", required_unless_present = "from_cluster")]
    pub sources: Vec<PathBuf>,
    /// Read the DaemonSets of a namespace, and their companions, from the cluster
    #[arg(long, requires = "namespace", conflicts_with = "sources")]
    pub from_cluster: bool,
    /// The namespace to read with --from-cluster
    #[arg(long, value_name = "NS", requires = "from_cluster")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Write the fleet here (a new or empty directory); without it nothing is written
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The Fleet's name (its drover.dev/fleet label)
    #[arg(long, value_name = "NAME", default_value = "imported")]
    pub fleet_name: String,
    /// The Fleet's namespace (default: the DaemonSets' own)
    #[arg(long, value_name = "NS")]
    pub fleet_namespace: Option<String>,
    /// The name of the one, catch-all, NodeGroup
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub group: String,
    /// Report format
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

/// Exit 0: imported, everything carried. 2: imported, something could not be carried
/// or was left out (the report names it). 1: an error, or a round trip that failed
/// (then nothing is written).
///
/// # Errors
/// When the input cannot be read, the cluster cannot be listed, a round trip fails,
/// or the output cannot be written.
pub fn run(args: &ImportArgs) -> anyhow::Result<Exit> {
    let opts = ImportOptions {
        fleet: args.fleet_name.clone(),
        namespace: args.fleet_namespace.clone(),
        group: args.group.clone(),
        from_cluster: args.from_cluster,
    };
    if let Some(out) = &args.out {
        check_out_dir(out)?;
    }
    let manifests = if args.from_cluster {
        let ns = args.namespace.as_deref().expect("clap requires it");
        super::runtime()?.block_on(read_cluster(&args.cluster, ns))?
    } else {
        read_sources(&args.sources)?
    };
    let imported = import(&manifests, &opts, &LIMITS)?;
    match args.format {
        ReportFormat::Text => print!("{}", text_report(&imported.report)),
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&imported).context("serialising the report")?
        ),
    }
    if !imported.report.round_trips_hold() {
        bail!(
            "the round trip failed for {} DaemonSet(s): rendering the imported fleet does not give back what it came from; nothing was written",
            imported
                .report
                .daemons
                .iter()
                .filter(|d| !matches!(d.round_trip, RoundTrip::Exact { .. }))
                .count()
        );
    }
    match &args.out {
        Some(out) => {
            write_files(out, &imported)?;
            eprintln!(
                "wrote {} files to {}",
                imported.files.len(),
                escape_control(&out.display().to_string())
            );
        }
        None => eprintln!("nothing written: give --out DIR to write the fleet"),
    }
    Ok(if imported.report.anything_left_behind() {
        Exit::Changes
    } else {
        Exit::Ok
    })
}

fn check_out_dir(out: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: import writes a new fleet into a new or empty directory",
                    out.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("reading {}", out.display())),
    }
}

fn write_files(out: &Path, imported: &Imported) -> anyhow::Result<()> {
    for f in &imported.files {
        // The core builds every path from checked names; refuse anything else anyway.
        let rel = Path::new(&f.path);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            bail!("refusing to write outside {}: {}", out.display(), f.path);
        }
        let path = out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, &f.bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Every source, read in order: a directory's files sorted by path.
fn read_sources(sources: &[PathBuf]) -> anyhow::Result<Vec<Manifest>> {
    let mut out = Vec::new();
    let mut total = 0u64;
    for s in sources {
        let files = if s.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_INPUT_BYTES + 1)
                .read_to_string(&mut text)
                .context("reading standard input")?;
            vec![("<stdin>".to_string(), text)]
        } else if s.is_dir() {
            let mut paths = Vec::new();
            walk(s, &mut paths)?;
            paths.sort();
            paths
                .into_iter()
                .map(|p| {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    Ok((p.display().to_string(), text))
                })
                .collect::<anyhow::Result<_>>()?
        } else {
            let text =
                std::fs::read_to_string(s).with_context(|| format!("reading {}", s.display()))?;
            vec![(s.display().to_string(), text)]
        };
        for (path, text) in files {
            total += text.len() as u64;
            if total > MAX_INPUT_BYTES {
                bail!("the input is more than {MAX_INPUT_BYTES} bytes");
            }
            out.extend(read_manifests(&path, &text)?);
        }
    }
    Ok(out)
}

/// The manifests under `dir`: *.yaml, *.yml, *.json; dot-entries and symlinks skipped.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let ft = e
            .file_type()
            .with_context(|| format!("reading {}", path.display()))?;
        if ft.is_symlink() {
            eprintln!(
                "warning: skipping symlink {}",
                escape_control(&path.display().to_string())
            );
        } else if ft.is_dir() {
            walk(&path, out)?;
        } else if [".yaml", ".yml", ".json"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// The DaemonSets of `ns` and what may be their companions: the namespace's
/// ServiceAccounts, ConfigMaps, Services, NetworkPolicies, RoleBindings and the Roles
/// they grant, and the ClusterRoleBindings naming a ServiceAccount of `ns` with the
/// ClusterRoles they grant.
async fn read_cluster(cluster: &ClusterArgs, ns: &str) -> anyhow::Result<Vec<Manifest>> {
    let c = crate::shell::cluster::Cluster::connect(cluster.context.as_deref(), ns, "import")
        .await
        .context("connecting to the cluster")?;
    let client = c.client.clone();
    let lp = ListParams::default();
    let mut out = Vec::new();
    macro_rules! list {
        ($ty:ty, $api:expr) => {{
            let api: Api<$ty> = $api;
            let list = api
                .list(&lp)
                .await
                .with_context(|| format!("listing {} in {ns}", stringify!($ty)))?;
            list.items
                .into_iter()
                .map(|o| serde_json::to_value(o).expect("objects serialise"))
                .collect::<Vec<JsonValue>>()
        }};
    }
    let daemonsets = list!(DaemonSet, Api::namespaced(client.clone(), ns));
    if daemonsets.is_empty() {
        bail!("no DaemonSet in namespace {ns}");
    }
    let mut objects = daemonsets;
    objects.extend(list!(ServiceAccount, Api::namespaced(client.clone(), ns)));
    objects.extend(list!(ConfigMap, Api::namespaced(client.clone(), ns)));
    objects.extend(list!(Service, Api::namespaced(client.clone(), ns)));
    objects.extend(list!(NetworkPolicy, Api::namespaced(client.clone(), ns)));
    let role_bindings = list!(RoleBinding, Api::namespaced(client.clone(), ns));
    let cluster_bindings: Vec<JsonValue> = list!(ClusterRoleBinding, Api::all(client.clone()))
        .into_iter()
        .filter(|b| {
            b["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["kind"] == "ServiceAccount" && s["namespace"].as_str() == Some(ns))
        })
        .collect();
    for b in role_bindings.iter().chain(&cluster_bindings) {
        let (kind, name) = (
            b.pointer("/roleRef/kind")
                .and_then(JsonValue::as_str)
                .unwrap_or(""),
            b.pointer("/roleRef/name")
                .and_then(JsonValue::as_str)
                .unwrap_or(""),
        );
        let role = match kind {
            "ClusterRole" => Api::<ClusterRole>::all(client.clone())
                .get_opt(name)
                .await
                .with_context(|| format!("reading ClusterRole {name}"))?
                .map(|r| serde_json::to_value(r).expect("objects serialise")),
            "Role" => Api::<Role>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await
                .with_context(|| format!("reading Role {ns}/{name}"))?
                .map(|r| serde_json::to_value(r).expect("objects serialise")),
            _ => None,
        };
        objects.extend(role);
    }
    objects.extend(role_bindings);
    objects.extend(cluster_bindings);
    for mut v in objects {
        strip_server_fields(&mut v);
        let kind = v["kind"].as_str().unwrap_or("").to_string();
        let name = v
            .pointer("/metadata/name")
            .and_then(JsonValue::as_str)
            .unwrap_or("")
            .to_string();
        out.push(Manifest {
            source: format!("cluster:{kind}/{name}"),
            value: v,
        });
    }
    Ok(out)
}

/// The report as text: per DaemonSet what went where, what was not carried and why,
/// the files written and how drover applies them, and the round trip.
pub fn text_report(r: &Report) -> String {
    let mut out = format!(
        "fleet `{}`: namespace {}, one catch-all group `{}`, one stage; {} DaemonSet(s) imported\n",
        r.fleet,
        r.namespace,
        r.group,
        r.daemons.len()
    );
    for d in &r.daemons {
        daemon_text(&mut out, d);
    }
    if !r.left_out.is_empty() {
        out.push_str("\nleft out (not written):\n");
        for l in &r.left_out {
            out.push_str(&format!("  {} ({}): {}\n", l.object, l.source, l.reason));
        }
    }
    // Escaped line by line: the text's own line breaks stay.
    out.lines().map(|l| escape_control(l) + "\n").collect()
}

fn daemon_text(out: &mut String, d: &DaemonReport) {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    out.push_str(&format!(
        "\nDaemonSet {} ({})\n  daemon         {} in {}, renders as {}\n",
        d.daemonset, d.source, d.daemon, d.file, d.renders_as
    ));
    match &d.round_trip {
        RoundTrip::Exact { fields } => out.push_str(&format!(
            "  round trip     exact: {fields} fields compared, each as upstream has it\n"
        )),
        RoundTrip::Differs { differences } => {
            out.push_str(&format!(
                "  round trip     FAILED: {} field(s) differ\n",
                differences.len()
            ));
            for x in differences {
                let v = |v: &Option<JsonValue>| {
                    v.as_ref()
                        .map_or("(absent)".to_string(), |v| short(&v.to_string()))
                };
                out.push_str(&format!(
                    "                   {}: upstream {}, rendered {}\n",
                    x.field,
                    v(&x.upstream),
                    v(&x.rendered)
                ));
            }
        }
        RoundTrip::Invalid { problems } => {
            out.push_str("  round trip     FAILED: the imported fleet does not load\n");
            for p in problems {
                out.push_str(&format!("                   {p}\n"));
            }
        }
    }
    out.push_str(&format!("  short form     {}\n", list(&d.short_form)));
    out.push_str(&format!("  podTemplate    {}\n", list(&d.pod_template)));
    if d.not_carried.is_empty() {
        out.push_str("  not carried    -\n");
    } else {
        out.push_str("  not carried\n");
        for n in &d.not_carried {
            out.push_str(&format!(
                "    {} = {}\n        {}\n",
                n.field,
                short(&n.value.to_string()),
                n.reason
            ));
        }
    }
    for (title, files, status) in [
        ("companions", &d.companions, COMPANIONS_APPLIED),
        ("config files", &d.config_files, CONFIG_FILES_APPLIED),
    ] {
        if !files.is_empty() {
            out.push_str(&format!("  {title} ({status})\n"));
            for f in files {
                out.push_str(&format!("    {f}\n"));
            }
        }
    }
    if !d.secrets.is_empty() {
        out.push_str(&format!(
            "  secrets        {} (never written)\n",
            d.secrets.join(", ")
        ));
    }
    for n in &d.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
}

fn short(s: &str) -> String {
    if s.chars().count() <= 100 {
        return s.to_string();
    }
    let mut t: String = s.chars().take(100).collect();
    t.push_str("...");
    t
}
