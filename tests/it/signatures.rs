//! Signed commits on the real local control plane: `drover sync --once` applies
//! only what a trusted key signed. The signatures are real: SSH keys made by
//! `ssh-keygen -t ed25519`, OpenPGP keys by `gpg --quick-gen-key` in a temporary
//! GNUPGHOME, commits made by `git commit -S`. Every refusal is checked in the audit
//! trail, in `drover history`, and in the API server's audit log (no write in the
//! test's namespace). Also: `drover plan` shows a stage held by a freeze window.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{Cmd, FleetYaml, Remote, Run, TestEnv, daemon, drover, records};

/// Runs a tool (git, ssh-keygen, gpg) in `dir`, panicking with its output when it
/// fails; returns its stdout.
fn run(dir: &Path, envs: &[(&str, &Path)], cmd: &str, args: &[&str]) -> String {
    let mut c = Cmd::new(cmd, cmd).current_dir(dir).args(args);
    for (k, v) in envs {
        c = c.env(*k, *v);
    }
    let r = c.run();
    r.expect_code(0);
    r.stdout
}

/// An SSH signing key made by `ssh-keygen`.
struct SshKey {
    private: PathBuf,
    public_line: String,
    fingerprint: String,
}

fn ssh_key(dir: &Path, name: &str) -> SshKey {
    let private = dir.join(name);
    run(
        dir,
        &[],
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            name,
            "-f",
            private.to_str().unwrap(),
        ],
    );
    let public_line = std::fs::read_to_string(dir.join(format!("{name}.pub")))
        .unwrap()
        .trim()
        .to_string();
    // `256 SHA256:… name (ED25519)`
    let fp = run(
        dir,
        &[],
        "ssh-keygen",
        &["-lf", &format!("{}.pub", private.display())],
    );
    let fingerprint = fp.split_whitespace().nth(1).unwrap().to_string();
    SshKey {
        private,
        public_line,
        fingerprint,
    }
}

/// A GnuPG home with one signing key, made by `gpg --quick-gen-key`; its agent is
/// stopped when dropped.
struct GpgKey {
    home: tempfile::TempDir,
    fingerprint: String,
    armored: String,
}

fn gpg_key(uid: &str) -> GpgKey {
    let home = tempfile::tempdir().unwrap();
    let env = [("GNUPGHOME", home.path())];
    run(
        home.path(),
        &env,
        "gpg",
        &[
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "ed25519",
            "sign",
            "never",
        ],
    );
    let colons = run(
        home.path(),
        &env,
        "gpg",
        &["--with-colons", "--list-keys", uid],
    );
    let fingerprint = colons
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .map(|l| l.trim_matches(':').to_string())
        .expect("a fingerprint");
    let armored = run(
        home.path(),
        &env,
        "gpg",
        &["--armor", "--export", &fingerprint],
    );
    GpgKey {
        home,
        fingerprint,
        armored,
    }
}

impl Drop for GpgKey {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// How a commit is signed.
enum Sign<'a> {
    No,
    Ssh(&'a SshKey),
    Gpg(&'a GpgKey),
}

/// A fleet repository driven with the git CLI (so `git commit -S` signs), pushed
/// to a bare remote that drover follows. (The harness's `Repo` commits with git2,
/// which does not sign.)
struct Repo {
    work: tempfile::TempDir,
    remote: Remote,
}

impl Repo {
    fn new(env: &TestEnv) -> Repo {
        let work = tempfile::tempdir().unwrap();
        let remote = Remote::new();
        let w = work.path();
        run(w, &[], "git", &["init", "-q", "-b", "main"]);
        run(w, &[], "git", &["config", "user.name", "Test Operator"]);
        run(w, &[], "git", &["config", "user.email", "ops@example.com"]);
        run(w, &[], "git", &["config", "commit.gpgsign", "false"]);
        let r = Repo { work, remote };
        r.write("drover.yaml", &fleet(&env.ns, ""));
        r
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.work.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Commits everything; returns the sha.
    fn commit(&self, message: &str, sign: Sign<'_>) -> String {
        let w = self.work.path();
        run(w, &[], "git", &["add", "-A"]);
        match sign {
            Sign::No => run(w, &[], "git", &["commit", "-q", "-m", message]),
            Sign::Ssh(k) => run(
                w,
                &[],
                "git",
                &[
                    "-c",
                    "gpg.format=ssh",
                    "-c",
                    &format!("user.signingkey={}", k.private.display()),
                    "commit",
                    "-q",
                    "-S",
                    "-m",
                    message,
                ],
            ),
            Sign::Gpg(k) => run(
                w,
                &[("GNUPGHOME", k.home.path())],
                "git",
                &[
                    "-c",
                    "gpg.format=openpgp",
                    "-c",
                    &format!("user.signingkey={}", k.fingerprint),
                    "commit",
                    "-q",
                    "-S",
                    "-m",
                    message,
                ],
            ),
        };
        self.head()
    }

    fn head(&self) -> String {
        run(self.work.path(), &[], "git", &["rev-parse", "HEAD"])
            .trim()
            .to_string()
    }

    fn push(&self) {
        run(
            self.work.path(),
            &[],
            "git",
            &[
                "push",
                "-q",
                "--force",
                &self.remote.path_str(),
                "HEAD:refs/heads/main",
            ],
        );
    }

    /// Rewrites HEAD as a commit object with the same `gpgsig` header but another
    /// message (what an attacker who can push, but not sign, could do).
    fn tamper_head(&self) -> String {
        let w = self.work.path();
        let raw = run(w, &[], "git", &["cat-file", "commit", "HEAD"]);
        assert!(raw.contains("gpgsig "), "HEAD is not signed:\n{raw}");
        let (headers, message) = raw.split_once("\n\n").unwrap();
        assert!(!message.contains("evil"));
        let forged = format!("{headers}\n\n{} (evil)\n", message.trim_end());
        let path = w.join(".forged");
        std::fs::write(&path, forged).unwrap();
        let oid = run(
            w,
            &[],
            "git",
            &["hash-object", "-t", "commit", "-w", path.to_str().unwrap()],
        )
        .trim()
        .to_string();
        std::fs::remove_file(path).unwrap();
        run(w, &[], "git", &["update-ref", "refs/heads/main", &oid]);
        oid
    }
}

/// A two-stage fleet on this test's nodes; `windows` is a `freezeWindows:` block.
fn fleet(ns: &str, windows: &str) -> String {
    FleetYaml::new(ns)
        .group("canary", &[("role", "canary")])
        .group("rest", &[])
        .stage("canary", &["canary"], None, "90s")
        .stage("rest", &["rest"], None, "90s")
        .rollout("{maxUnavailable: 1, maxSurge: 0}")
        .spec_lines(windows)
        .yaml()
}

fn agent(image: &str) -> String {
    daemon("agent", image, "")
}

struct Setup {
    env: TestEnv<'static>,
    repo: Repo,
    keys: tempfile::TempDir,
    state: tempfile::TempDir,
}

fn setup(test: &str) -> Setup {
    let env = TestEnv::new(test);
    env.nodes("canary", 1, &[("role", "canary")]);
    env.nodes("rest", 1, &[]);
    let repo = Repo::new(&env);
    Setup {
        env,
        repo,
        keys: tempfile::tempdir().unwrap(),
        state: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    fn allowed_signers(&self, keys: &[(&str, &SshKey)]) -> PathBuf {
        let p = self.keys.path().join("allowed_signers");
        let text: String = keys
            .iter()
            .map(|(who, k)| format!("{who} {}\n", k.public_line))
            .collect();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn keyring(&self, keys: &[&GpgKey]) -> PathBuf {
        let p = self.keys.path().join("trusted.asc");
        std::fs::write(
            &p,
            keys.iter().map(|k| k.armored.as_str()).collect::<String>(),
        )
        .unwrap();
        p
    }

    fn sync(&self, extra: &[&str]) -> Run {
        let remote = self.repo.remote.path_str();
        let mut args = vec![
            "sync",
            "--repo",
            &remote,
            "--state-dir",
            self.state.path().to_str().unwrap(),
            "--once",
        ];
        args.extend_from_slice(extra);
        self.env.drover(&args).run()
    }

    fn records(&self) -> Vec<serde_json::Value> {
        records(self.state.path())
    }

    fn history(&self) -> String {
        let r = self
            .env
            .drover(&[
                "history",
                "--state-dir",
                self.state.path().to_str().unwrap(),
            ])
            .run();
        r.expect_code(0);
        r.stdout.clone()
    }

    fn daemonsets(&self) -> usize {
        self.env.get_json(&["daemonsets"])["items"]
            .as_array()
            .unwrap()
            .len()
    }

    /// Runs `f` and returns the write requests the API server logged in this test's
    /// namespace meanwhile. A marker write after `f` proves the log has caught up.
    fn writes_during(&self, f: impl FnOnce()) -> Vec<String> {
        let audit = self.env.tb.audit();
        let mark = audit.mark();
        f();
        let marker = format!("marker-{}", std::process::id());
        self.env
            .kubectl(&["-n", &self.env.ns, "create", "configmap", &marker])
            .expect_code(0);
        let mut writes = Vec::new();
        self.env.wait_for(
            "the marker in the API audit log",
            Duration::from_secs(60),
            || {
                let events = audit.since(mark);
                let seen = events
                    .iter()
                    .any(|e| e.name == marker && e.verb == "create");
                writes = events
                    .iter()
                    .filter(|e| e.namespace == self.env.ns && e.is_write() && e.name != marker)
                    .map(|e| format!("{} {} {} ({})", e.verb, e.resource, e.name, e.uri))
                    .collect();
                seen
            },
        );
        self.env
            .kubectl(&["-n", &self.env.ns, "delete", "configmap", &marker])
            .expect_code(0);
        writes
    }

    /// The refusal of `sha` shows everywhere: exit 1, a `refused` record naming the
    /// signature status (and key), `history`, no write in the namespace; and the
    /// next run waits for a new commit instead of retrying.
    fn expect_refused(
        &self,
        sha: &str,
        flags: &[&str],
        status: &str,
        reason: &str,
    ) -> serde_json::Value {
        let before = self.records().len();
        let ds_before = self.daemonsets();
        let mut out = None;
        let writes = self.writes_during(|| out = Some(self.sync(flags)));
        out.unwrap().expect_code(1);
        assert_eq!(
            writes,
            Vec::<String>::new(),
            "a refused commit wrote to the cluster"
        );
        assert_eq!(self.daemonsets(), ds_before);
        let recs = self.records();
        assert_eq!(recs.len(), before + 1, "{recs:#?}");
        let rec = recs.last().unwrap().clone();
        assert_eq!(rec["outcome"], "refused", "{rec:#}");
        assert_eq!(rec["commit"]["sha"], sha, "{rec:#}");
        assert_eq!(rec["commit"]["signature"], status, "{rec:#}");
        let why = rec["reason"].as_str().unwrap();
        assert!(why.contains(reason), "reason {why:?} lacks {reason:?}");
        let h = self.history();
        let line = h
            .lines()
            .find(|l| l.contains(&sha[..12]) && l.contains("refused"))
            .unwrap_or_else(|| panic!("no refused line for {sha} in history:\n{h}"));
        assert!(
            line.contains(status),
            "history line {line:?} lacks {status}"
        );
        // Not retried until the branch moves.
        self.sync(flags).expect_code(0);
        assert_eq!(self.records().len(), before + 1);
        rec
    }
}

#[test]
fn a_commit_signed_by_a_trusted_ssh_key_is_applied_and_recorded_as_good() {
    let s = setup("sig-ssh-good");
    let alice = ssh_key(s.keys.path(), "alice");
    let signers = s.allowed_signers(&[("alice@example.com", &alice)]);
    s.repo
        .write("daemons/agent.yaml", &agent("registry.example/agent:v1"));
    let sha = s.repo.commit("agent v1", Sign::Ssh(&alice));
    s.repo.push();
    // The same watch on the API audit log that proves refusals write nothing sees
    // this apply's writes.
    let writes = s.writes_during(|| {
        s.sync(&["--allowed-signers", signers.to_str().unwrap()])
            .expect_code(0);
    });
    assert!(
        writes.iter().filter(|w| w.contains("daemonsets")).count() >= 2,
        "{writes:#?}"
    );
    assert_eq!(s.daemonsets(), 2);
    let rec = s.records().pop().unwrap();
    assert_eq!(rec["outcome"], "applied", "{rec:#}");
    assert_eq!(rec["commit"]["sha"], sha);
    assert_eq!(rec["commit"]["signature"], "good", "{rec:#}");
    let v = &rec["commit"]["verification"];
    assert_eq!(v["format"], "ssh");
    assert_eq!(v["key"], alice.fingerprint.as_str());
    assert_eq!(v["signer"], "alice@example.com");
    assert_eq!(
        rec["signature_policy"], "head",
        "a trust source alone means `head`"
    );
    let h = s.history();
    assert!(
        h.lines()
            .any(|l| l.contains(&sha[..12]) && l.contains("good alice@example.com")),
        "{h}"
    );
    // The PR preview shows the head's signature, verified with the same file.
    let work = s.repo.work.path().to_str().unwrap();
    let d = s
        .env
        .drover(&[
            "diff",
            "--repo",
            work,
            "--base",
            "HEAD",
            "--head",
            "HEAD",
            "--format",
            "markdown",
            "--allowed-signers",
            signers.to_str().unwrap(),
        ])
        .run();
    d.expect_code(0);
    assert!(
        d.stdout.contains(&format!(
            "Head commit signature: **good** (ssh `{}`, alice@example.com)",
            alice.fingerprint
        )),
        "{}",
        d.stdout
    );
}

#[test]
fn a_commit_signed_by_a_trusted_openpgp_key_is_applied_and_one_by_another_key_is_refused() {
    let s = setup("sig-gpg");
    let ops = gpg_key("Ops <ops@example.com>");
    let stranger = gpg_key("Stranger <stranger@example.com>");
    let keyring = s.keyring(&[&ops]);
    let flags = ["--trusted-keys", keyring.to_str().unwrap()];
    s.repo
        .write("daemons/agent.yaml", &agent("registry.example/agent:v1"));
    let sha = s.repo.commit("agent v1", Sign::Gpg(&ops));
    s.repo.push();
    s.sync(&flags).expect_code(0);
    let rec = s.records().pop().unwrap();
    assert_eq!(rec["outcome"], "applied", "{rec:#}");
    assert_eq!(rec["commit"]["sha"], sha);
    assert_eq!(rec["commit"]["signature"], "good", "{rec:#}");
    assert_eq!(rec["commit"]["verification"]["format"], "openpgp");
    assert_eq!(
        rec["commit"]["verification"]["key"],
        ops.fingerprint.as_str()
    );
    assert_eq!(
        rec["commit"]["verification"]["signer"],
        "Ops <ops@example.com>"
    );

    s.repo
        .write("daemons/agent.yaml", &agent("registry.example/agent:v2"));
    let bad = s
        .repo
        .commit("agent v2 by someone else", Sign::Gpg(&stranger));
    s.repo.push();
    let rec = s.expect_refused(
        &bad,
        &flags,
        "unknown-key",
        "is signed by a key that is not trusted",
    );
    assert_eq!(
        rec["commit"]["verification"]["key"],
        stranger.fingerprint.as_str(),
        "the refusal names the key: {rec:#}"
    );
    assert!(s.env.images().values().all(|i| i.ends_with(":v1")));
}

#[test]
fn an_unsigned_commit_is_refused_and_the_last_good_one_stays_applied() {
    let s = setup("sig-unsigned");
    let alice = ssh_key(s.keys.path(), "alice");
    let signers = s.allowed_signers(&[("alice@example.com", &alice)]);
    let flags = ["--allowed-signers", signers.to_str().unwrap()];
    s.repo
        .write("daemons/agent.yaml", &agent("registry.example/agent:v1"));
    s.repo.commit("agent v1", Sign::Ssh(&alice));
    s.repo.push();
    s.sync(&flags).expect_code(0);

    s.repo
        .write("daemons/agent.yaml", &agent("registry.example/agent:v2"));
    let sha = s.repo.commit("agent v2, unsigned", Sign::No);
    s.repo.push();
    s.expect_refused(&sha, &flags, "unsigned", "is not signed");
    assert!(s.env.images().values().all(|i| i.ends_with(":v1")));
}

#[test]
fn a_commit_signed_by_an_unknown_ssh_key_is_refused_naming_the_key() {
    let s = setup("sig-ssh-unknown");
    let alice = ssh_key(s.keys.path(), "alice");
    let mallory = ssh_key(s.keys.path(), "mallory");
    let signers = s.allowed_signers(&[("alice@example.com", &alice)]);
    s.repo
        .write("daemons/agent.yaml", &agent("registry.example/agent:v1"));
    let sha = s.repo.commit("agent v1", Sign::Ssh(&mallory));
    s.repo.push();
    let rec = s.expect_refused(
        &sha,
        &["--allowed-signers", signers.to_str().unwrap()],
        "unknown-key",
        &mallory.fingerprint,
    );
    assert_eq!(
        rec["commit"]["verification"]["key"],
        mallory.fingerprint.as_str()
    );
    assert_eq!(s.daemonsets(), 0);
}

#[test]
fn a_signature_carried_over_to_a_tampered_commit_is_refused() {
    let s = setup("sig-tampered");
    let alice = ssh_key(s.keys.path(), "alice");
    let signers = s.allowed_signers(&[("alice@example.com", &alice)]);
    s.repo
        .write("daemons/agent.yaml", &agent("registry.example/agent:v1"));
    s.repo.commit("agent v1", Sign::Ssh(&alice));
    let forged = s.repo.tamper_head();
    s.repo.push();
    let rec = s.expect_refused(
        &forged,
        &["--allowed-signers", signers.to_str().unwrap()],
        "bad",
        "does not match the commit",
    );
    assert_eq!(
        rec["commit"]["verification"]["key"],
        alice.fingerprint.as_str()
    );
    assert_eq!(s.daemonsets(), 0);
}

#[test]
fn under_the_all_policy_an_unsigned_commit_in_the_middle_refuses_a_signed_head() {
    let s = setup("sig-all");
    let alice = ssh_key(s.keys.path(), "alice");
    let signers = s.allowed_signers(&[("alice@example.com", &alice)]);
    let flags = [
        "--allowed-signers",
        signers.to_str().unwrap(),
        "--require-signed",
        "all",
    ];
    s.repo
        .write("daemons/agent.yaml", &agent("registry.example/agent:v1"));
    s.repo.commit("agent v1", Sign::Ssh(&alice));
    s.repo.push();
    s.sync(&flags).expect_code(0);

    s.repo
        .write("daemons/agent.yaml", &agent("registry.example/agent:v2"));
    let middle = s.repo.commit("agent v2, unsigned", Sign::No);
    s.repo
        .write("daemons/agent.yaml", &agent("registry.example/agent:v3"));
    let head = s.repo.commit("agent v3, signed", Sign::Ssh(&alice));
    s.repo.push();
    let rec = s.expect_refused(
        &head,
        &flags,
        "good",
        &format!(
            "commit {} (1 of 2 since the last applied commit) is not signed",
            &middle[..12]
        ),
    );
    assert_eq!(rec["signature_policy"], "all");
    assert!(s.env.images().values().all(|i| i.ends_with(":v1")));
}

#[test]
fn plan_shows_a_stage_held_by_a_freeze_window_as_frozen_until() {
    let s = setup("freeze-plan");
    // Open at every minute for two minutes: whenever this test runs, it is open.
    s.repo.write(
        "drover.yaml",
        &fleet(
            &s.env.ns,
            "  freezeWindows:\n    - {name: always, start: \"* * * * *\", timeZone: Europe/Berlin, duration: 2m, groups: [rest]}\n",
        ),
    );
    s.repo
        .write("daemons/agent.yaml", &agent("registry.example/agent:v1"));
    s.repo.commit("agent v1", Sign::No);
    let work = s.repo.work.path().to_str().unwrap();
    let text = s.env.drover(&["plan", "--repo", work]).run();
    text.expect_code(2);
    let rest = text
        .stdout
        .split("stage rest")
        .nth(1)
        .unwrap_or_else(|| panic!("no stage rest:\n{}", text.stdout));
    assert!(
        rest.trim_start_matches(|c| c != '\n')
            .trim_start()
            .starts_with("frozen until at least "),
        "{}",
        text.stdout
    );
    assert!(rest.contains("(window always)"), "{}", text.stdout);
    let canary = text.stdout.split("stage canary").nth(1).unwrap();
    let canary = &canary[..canary.find("stage rest").unwrap()];
    assert!(!canary.contains("frozen"), "{}", text.stdout);

    let json = s
        .env
        .drover(&["plan", "--repo", work, "--format", "json"])
        .run();
    json.expect_code(2);
    let p: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(p["stages"][0]["name"], "canary");
    assert!(p["stages"][0].get("frozen").is_none(), "{p:#}");
    assert_eq!(
        p["stages"][1]["frozen"]["windows"],
        serde_json::json!(["always"])
    );
    let until = p["stages"][1]["frozen"]["until"].as_str().unwrap();
    assert!(until.ends_with("[Europe/Berlin]"), "{until}");
}

// Key validity, checked through the library on real signatures (no cluster
// needed): a key is good only if valid both when it signed and now.

fn verify_head(repo: &Repo, signers: Option<&Path>, keyring: Option<&Path>) -> serde_json::Value {
    use drover::shell::signature::TrustConfig;
    let cfg = TrustConfig::new(
        signers.map(Path::to_path_buf),
        keyring.map(Path::to_path_buf),
        None,
    )
    .unwrap();
    let sources = cfg.load().unwrap();
    let git = git2::Repository::open(repo.work.path()).unwrap();
    let oid = git2::Oid::from_str(&repo.head()).unwrap();
    let v = sources.verify_commit(&git, oid, jiff::Timestamp::now());
    serde_json::to_value(v).unwrap()
}

fn offline_repo() -> Repo {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    run(w, &[], "git", &["init", "-q", "-b", "main"]);
    run(w, &[], "git", &["config", "user.name", "Test Operator"]);
    run(w, &[], "git", &["config", "user.email", "ops@example.com"]);
    let r = Repo {
        work,
        remote: Remote::new(),
    };
    r.write("README", "fleet\n");
    r
}

#[test]
fn an_ssh_key_past_its_valid_before_no_longer_signs() {
    let keys = tempfile::tempdir().unwrap();
    let alice = ssh_key(keys.path(), "alice");
    let repo = offline_repo();
    repo.commit("signed", Sign::Ssh(&alice));
    let file = keys.path().join("allowed_signers");
    std::fs::write(&file, format!("alice@example.com {}\n", alice.public_line)).unwrap();
    assert_eq!(verify_head(&repo, Some(&file), None)["status"], "good");
    std::fs::write(
        &file,
        format!(
            "alice@example.com valid-before=\"20200101Z\" {}\n",
            alice.public_line
        ),
    )
    .unwrap();
    let v = verify_head(&repo, Some(&file), None);
    assert_eq!(v["status"], "bad", "{v:#}");
    assert!(v["reason"].as_str().unwrap().contains("not valid"), "{v:#}");
    std::fs::write(
        &file,
        format!(
            "alice@example.com namespaces=\"file\" {}\n",
            alice.public_line
        ),
    )
    .unwrap();
    let v = verify_head(&repo, Some(&file), None);
    assert_eq!(v["status"], "bad", "{v:#}");
    assert!(
        v["reason"].as_str().unwrap().contains("namespaces file"),
        "{v:#}"
    );
}

#[test]
fn a_revoked_openpgp_key_no_longer_signs() {
    let keys = tempfile::tempdir().unwrap();
    let ops = gpg_key("Ops <ops@example.com>");
    let repo = offline_repo();
    repo.commit("signed", Sign::Gpg(&ops));
    let ring = keys.path().join("trusted.asc");
    std::fs::write(&ring, &ops.armored).unwrap();
    assert_eq!(verify_head(&repo, None, Some(&ring))["status"], "good");
    // gpg wrote a revocation certificate when it made the key; import it.
    let env = [("GNUPGHOME", ops.home.path())];
    let cert = std::fs::read_to_string(
        ops.home
            .path()
            .join(format!("openpgp-revocs.d/{}.rev", ops.fingerprint)),
    )
    .unwrap()
    .replace(
        ":-----BEGIN PGP PUBLIC KEY BLOCK-----",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----",
    );
    let cert_file = keys.path().join("revoke.asc");
    std::fs::write(&cert_file, cert).unwrap();
    run(
        ops.home.path(),
        &env,
        "gpg",
        &["--batch", "--import", cert_file.to_str().unwrap()],
    );
    let revoked = run(
        ops.home.path(),
        &env,
        "gpg",
        &["--armor", "--export", &ops.fingerprint],
    );
    std::fs::write(&ring, revoked).unwrap();
    let v = verify_head(&repo, None, Some(&ring));
    assert_eq!(v["status"], "bad", "{v:#}");
    assert_eq!(v["reason"], "the key is revoked", "{v:#}");
}

#[test]
fn an_expired_openpgp_key_no_longer_signs_even_a_commit_dated_when_it_was_valid() {
    let keys = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let env = [("GNUPGHOME", home.path())];
    // A key made on 2020-01-01 that expired a day later, and a gpg that believes
    // it is still 2020-01-01 to sign with it.
    let past = "20200101T120000!";
    run(
        home.path(),
        &env,
        "gpg",
        &[
            "--batch",
            "--faked-system-time",
            "20200101T000000!",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Old <old@example.com>",
            "ed25519",
            "sign",
            "1d",
        ],
    );
    let colons = run(home.path(), &env, "gpg", &["--with-colons", "--list-keys"]);
    let fpr = colons
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .map(|l| l.trim_matches(':').to_string())
        .unwrap();
    let wrapper = keys.path().join("gpg-in-2020");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec gpg --faked-system-time {past} \"$@\"\n"),
    )
    .unwrap();
    run(
        keys.path(),
        &[],
        "chmod",
        &["755", wrapper.to_str().unwrap()],
    );
    let repo = offline_repo();
    let w = repo.work.path();
    run(w, &[], "git", &["add", "-A"]);
    Cmd::new("git", "git")
        .current_dir(w)
        .env("GNUPGHOME", home.path())
        .env("GIT_COMMITTER_DATE", "2020-01-01T12:00:00Z")
        .env("GIT_AUTHOR_DATE", "2020-01-01T12:00:00Z")
        .args(&[
            "-c",
            &format!("gpg.program={}", wrapper.display()),
            "-c",
            &format!("user.signingkey={fpr}"),
            "commit",
            "-q",
            "-S",
            "-m",
            "signed in 2020",
        ])
        .run()
        .expect_code(0);
    let ring = keys.path().join("trusted.asc");
    let armored = run(home.path(), &env, "gpg", &["--armor", "--export", &fpr]);
    std::fs::write(&ring, armored).unwrap();
    let v = verify_head(&repo, None, Some(&ring));
    assert_eq!(v["status"], "bad", "{v:#}");
    assert_eq!(v["reason"], "the key had expired now", "{v:#}");
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", home.path())
        .args(["--kill", "gpg-agent"])
        .output();
}

#[test]
fn a_trust_source_inside_the_repository_it_checks_is_refused_at_start() {
    let repo = offline_repo();
    repo.write("allowed_signers", "mallory@example.com ssh-ed25519 AAAA\n");
    let state = tempfile::tempdir().unwrap();
    let work = repo.work.path();
    let r = drover(&[
        "sync",
        "--repo",
        work.to_str().unwrap(),
        "--state-dir",
        state.path().to_str().unwrap(),
        "--once",
        "--allowed-signers",
        work.join("allowed_signers").to_str().unwrap(),
    ])
    .run();
    r.expect_code(1)
        .expect_stderr_contains("the trust source lies inside the repository it checks");
    assert!(!state.path().join("audit.jsonl").exists());
}
