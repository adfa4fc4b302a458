//! File-system triggers for `--watch`: `notify` events, debounced into one signal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// Watches `paths` and sends `()` once per burst of changes (quiet for `debounce`).
/// Keep the returned watcher alive for as long as events are wanted.
///
/// # Errors
/// When a path cannot be watched.
pub fn watch(
    paths: &[PathBuf],
    debounce: Duration,
) -> notify::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && !matches!(ev.kind, notify::EventKind::Access(_))
        {
            let _ = raw_tx.send(());
        }
    })?;
    for p in paths {
        watcher.watch(Path::new(p), RecursiveMode::Recursive)?;
    }
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while raw_rx.recv().await.is_some() {
            // Swallow the rest of the burst.
            while let Ok(Some(())) = tokio::time::timeout(debounce, raw_rx.recv()).await {}
            if tx.try_send(()).is_err() && tx.is_closed() {
                return;
            }
        }
    });
    Ok((watcher, rx))
}
