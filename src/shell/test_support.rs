//! Test support for the shell's unit tests: a record of the spans code opens (to
//! check the reconcile steps' `#[instrument]` spans), a git repository holding the
//! example fleet, and a cluster connection nothing answers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::{LookupSpan, Registry};

/// One span as it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub name: &'static str,
    pub parent: Option<&'static str>,
    pub fields: BTreeMap<String, String>,
}

/// The spans opened while the guard of [`capture`] was held, in order.
#[derive(Debug, Clone, Default)]
pub struct Spans(Arc<Mutex<Vec<Opened>>>);

impl Spans {
    pub fn all(&self) -> Vec<Opened> {
        self.0.lock().expect("spans").clone()
    }

    /// The spans called `name`.
    pub fn named(&self, name: &str) -> Vec<Opened> {
        self.all().into_iter().filter(|s| s.name == name).collect()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx
            .span(id)
            .and_then(|s| s.parent())
            .map(|p| p.metadata().name());
        self.0.lock().expect("spans").push(Opened {
            name: attrs.metadata().name(),
            parent,
            fields,
        });
    }
}

/// A subscriber that records every span opened while it is the default (with
/// `tracing::dispatcher::with_default`, or a future's `.with_subscriber(..)`).
pub fn capture() -> (Spans, tracing::Dispatch) {
    let spans = Spans::default();
    let dispatch = tracing::Dispatch::new(Registry::default().with(spans.clone()));
    (spans, dispatch)
}

/// Makes `dir` a git repository with one commit holding the example fleet under
/// `fleet/`; returns the commit's sha.
pub fn example_repo(dir: &Path) -> String {
    use crate::core::limits::LIMITS;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet");
    let repo = git2::Repository::init(dir).expect("git init");
    let mut index = repo.index().expect("index");
    for f in super::source::read_worktree(&root, &LIMITS).expect("the example fleet") {
        let path = dir.join("fleet").join(&f.path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, &f.bytes).expect("write");
        index
            .add_path(&Path::new("fleet").join(&f.path))
            .expect("git add");
    }
    let tree = repo
        .find_tree(index.write_tree().expect("write tree"))
        .expect("tree");
    let sig = git2::Signature::now("t", "t@example.com").expect("signature");
    repo.commit(Some("HEAD"), &sig, &sig, "the example fleet", &tree, &[])
        .expect("commit")
        .to_string()
}

/// A connection to a loopback port nothing listens on: every request fails at
/// once with a connection error. For tests of what happens around requests (spans,
/// which step failed), never as a stand-in for the API server. Needs a runtime.
pub fn unreachable_cluster(namespace: &str, fleet: &str) -> super::cluster::Cluster {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let server = format!("http://127.0.0.1:{port}");
    let mut config = kube::Config::new(server.parse().expect("a URL"));
    config.default_retry = false;
    super::cluster::Cluster {
        client: kube::Client::try_from(config).expect("a client"),
        namespace: namespace.to_string(),
        fleet: fleet.to_string(),
        server,
        requests: Default::default(),
        identity: Default::default(),
    }
}
