//! `drover render`: print the DaemonSets (and config ConfigMaps) a fleet renders to,
//! or write one file each.

use std::path::PathBuf;

use anyhow::Context as _;

use super::{Exit, FleetArgs};
use crate::core::render::{to_yaml, to_yaml_stream};
use crate::settings::RenderSettings;

#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Write one `<name>.yaml` per DaemonSet into this directory instead of stdout
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// # Errors
/// When the fleet cannot be read, is invalid, or the output cannot be written.
pub fn run(args: &RenderArgs) -> anyhow::Result<Exit> {
    render(&RenderSettings::resolve(args))
}

/// # Errors
/// See [`run`].
pub fn render(settings: &RenderSettings) -> anyhow::Result<Exit> {
    let loaded = super::load(&settings.fleet)?;
    if !loaded.fleet.companions.is_empty() {
        eprintln!(
            "note: {} companion object(s) are not printed: render prints the DaemonSets only (`drover plan` and `drover diff` show the companions)",
            loaded.fleet.companions.len()
        );
    }
    match &settings.out {
        None => print!("{}", to_yaml_stream(&loaded.desired)),
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for item in &loaded.desired.items {
                let path = dir.join(format!("{}.yaml", item.name));
                std::fs::write(&path, to_yaml(&item.manifest.value()))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            // Config ConfigMaps as `configmap-<entry>-<hash>.yaml`, apart from the
            // DaemonSets' `<daemon>-<group>.yaml`.
            for c in &loaded.desired.config_maps {
                let path = dir.join(format!("configmap-{}.yaml", c.name));
                std::fs::write(&path, to_yaml(&c.manifest))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if loaded.desired.config_maps.is_empty() {
                eprintln!(
                    "wrote {} DaemonSets to {}",
                    loaded.desired.items.len(),
                    dir.display()
                );
            } else {
                eprintln!(
                    "wrote {} DaemonSets and {} config ConfigMaps to {}",
                    loaded.desired.items.len(),
                    loaded.desired.config_maps.len(),
                    dir.display()
                );
            }
        }
    }
    Ok(Exit::Ok)
}
