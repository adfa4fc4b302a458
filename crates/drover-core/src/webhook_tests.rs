use proptest::prelude::*;

use super::*;

const SECRET: &[u8] = b"s3cret-of-the-hook";
const NOW: i64 = 1_800_000_000;
const BODY: &[u8] = br#"{"ref":"refs/heads/main","after":"0123abcd"}"#;

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn run(provider: Provider, headers: &[(String, String)], body: &[u8]) -> Verdict {
    check(
        &Delivery {
            provider,
            headers,
            body,
        },
        SECRET,
        NOW,
        &mut Replays::default(),
    )
}

fn github_headers(sig: &str, event: &str, delivery: &str) -> Vec<(String, String)> {
    h(&[
        ("X-Hub-Signature-256", sig),
        ("X-GitHub-Event", event),
        ("X-GitHub-Delivery", delivery),
    ])
}

#[test]
fn a_github_push_signed_with_the_secret_is_fetched() {
    let headers = github_headers(&sign_github(SECRET, BODY), "push", "d-1");
    assert_eq!(
        run(Provider::GitHub, &headers, BODY),
        Verdict::Fetch {
            delivery: Some("d-1".into())
        }
    );
}

#[test]
fn header_names_match_whatever_their_case() {
    let headers = h(&[
        ("x-hub-signature-256", &sign_github(SECRET, BODY)),
        ("x-github-event", "push"),
        ("X-GITHUB-DELIVERY", "d-1"),
    ]);
    assert_eq!(run(Provider::GitHub, &headers, BODY).label(), "accepted");
}

#[test]
fn a_github_ping_or_tag_event_is_authentic_but_fetches_nothing() {
    for event in ["ping", "create", "issues"] {
        let headers = github_headers(&sign_github(SECRET, BODY), event, "d-1");
        assert_eq!(
            run(Provider::GitHub, &headers, BODY),
            Verdict::Ignore {
                event: event.into()
            }
        );
    }
}

#[test]
fn a_github_hook_signed_with_another_secret_or_over_another_body_is_refused() {
    let other = github_headers(&sign_github(b"another secret", BODY), "push", "d-1");
    assert_eq!(
        run(Provider::GitHub, &other, BODY),
        Verdict::Refuse(Refusal::BadSignature)
    );
    let signed = github_headers(&sign_github(SECRET, BODY), "push", "d-1");
    let tampered = br#"{"ref":"refs/heads/main","after":"ffffffff"}"#;
    assert_eq!(
        run(Provider::GitHub, &signed, tampered),
        Verdict::Refuse(Refusal::BadSignature)
    );
}

#[test]
fn a_github_hook_without_a_signature_is_unsigned() {
    let headers = h(&[("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "d-1")]);
    assert_eq!(
        run(Provider::GitHub, &headers, BODY),
        Verdict::Refuse(Refusal::Unsigned {
            header: "X-Hub-Signature-256"
        })
    );
    // The SHA-1 header of old GitHub hooks is not accepted in its place.
    let mut sha1 = headers.clone();
    sha1.push(("X-Hub-Signature".into(), "sha1=0000".into()));
    assert_eq!(run(Provider::GitHub, &sha1, BODY).label(), "unsigned");
}

#[test]
fn malformed_github_signatures_are_refused_as_malformed() {
    let good = sign_github(SECRET, BODY);
    let hexpart = good.strip_prefix("sha256=").unwrap().to_string();
    for sig in [
        format!("sha1={hexpart}"),
        hexpart.clone(),
        format!("sha256={}", &hexpart[..62]),
        format!("sha256={}zz", &hexpart[..62]),
        format!("sha256={hexpart}00"),
        String::new(),
    ] {
        let headers = github_headers(&sig, "push", "d-1");
        assert_eq!(
            run(Provider::GitHub, &headers, BODY).label(),
            "malformed",
            "{sig}"
        );
    }
}

#[test]
fn a_header_sent_twice_is_refused_not_picked() {
    let sig = sign_github(SECRET, BODY);
    let mut headers = github_headers(&sig, "push", "d-1");
    headers.push(("x-hub-signature-256".into(), sig.clone()));
    assert_eq!(
        run(Provider::GitHub, &headers, BODY),
        Verdict::Refuse(Refusal::Malformed {
            header: "X-Hub-Signature-256",
            why: "sent more than once".into()
        })
    );
    let mut events = github_headers(&sig, "push", "d-1");
    events.push(("X-GitHub-Event".into(), "ping".into()));
    assert_eq!(run(Provider::GitHub, &events, BODY).label(), "malformed");
}

#[test]
fn a_github_hook_without_a_delivery_id_is_malformed() {
    let headers = h(&[
        ("X-Hub-Signature-256", &sign_github(SECRET, BODY)),
        ("X-GitHub-Event", "push"),
    ]);
    assert_eq!(run(Provider::GitHub, &headers, BODY).label(), "malformed");
}

#[test]
fn a_replayed_delivery_is_refused_and_a_new_one_is_not() {
    let mut replays = Replays::default();
    let sig = sign_github(SECRET, BODY);
    let first = github_headers(&sig, "push", "d-1");
    let d = |headers| Delivery {
        provider: Provider::GitHub,
        headers,
        body: BODY,
    };
    assert_eq!(
        check(&d(&first), SECRET, NOW, &mut replays).label(),
        "accepted"
    );
    assert_eq!(
        check(&d(&first), SECRET, NOW, &mut replays),
        Verdict::Refuse(Refusal::Replay {
            delivery: "d-1".into()
        })
    );
    let second = github_headers(&sig, "push", "d-2");
    assert_eq!(
        check(&d(&second), SECRET, NOW, &mut replays).label(),
        "accepted"
    );
    // A refused delivery is not remembered: the genuine one may still come.
    let forged = github_headers(&sign_github(b"x", BODY), "push", "d-3");
    assert_eq!(
        check(&d(&forged), SECRET, NOW, &mut replays).label(),
        "bad_signature"
    );
    let genuine = github_headers(&sig, "push", "d-3");
    assert_eq!(
        check(&d(&genuine), SECRET, NOW, &mut replays).label(),
        "accepted"
    );
}

#[test]
fn the_same_delivery_id_from_two_dialects_is_two_deliveries() {
    let mut replays = Replays::default();
    let gh = github_headers(&sign_github(SECRET, BODY), "push", "same");
    let gl = h(&[
        ("X-Gitlab-Token", "s3cret-of-the-hook"),
        ("X-Gitlab-Event", "Push Hook"),
        ("X-Gitlab-Event-UUID", "same"),
    ]);
    for (provider, headers) in [(Provider::GitHub, &gh), (Provider::GitLab, &gl)] {
        let d = Delivery {
            provider,
            headers,
            body: BODY,
        };
        assert_eq!(check(&d, SECRET, NOW, &mut replays).label(), "accepted");
    }
}

#[test]
fn replay_memory_is_bounded_and_forgets_the_oldest_first() {
    let mut replays = Replays::default();
    let sig = sign_github(SECRET, BODY);
    let mut accept = |id: &str| {
        let headers = github_headers(&sig, "push", id);
        let d = Delivery {
            provider: Provider::GitHub,
            headers: &headers,
            body: BODY,
        };
        check(&d, SECRET, NOW, &mut replays).label()
    };
    for i in 0..=REMEMBERED_DELIVERIES {
        assert_eq!(accept(&format!("d-{i}")), "accepted");
    }
    // d-0 was pushed out by the last one; d-1 is still remembered.
    assert_eq!(accept("d-0"), "accepted");
    assert_eq!(accept("d-2"), "replay");
}

#[test]
fn a_gitlab_push_with_the_token_is_fetched_and_a_wrong_token_is_refused() {
    let ok = h(&[
        ("X-Gitlab-Token", "s3cret-of-the-hook"),
        ("X-Gitlab-Event", "Push Hook"),
    ]);
    assert_eq!(
        run(Provider::GitLab, &ok, BODY),
        Verdict::Fetch { delivery: None }
    );
    for token in [
        "s3cret-of-the-hoo",
        "s3cret-of-the-hook ",
        "",
        "S3CRET-OF-THE-HOOK",
    ] {
        let bad = h(&[("X-Gitlab-Token", token), ("X-Gitlab-Event", "Push Hook")]);
        assert_eq!(
            run(Provider::GitLab, &bad, BODY),
            Verdict::Refuse(Refusal::BadSignature),
            "{token:?}"
        );
    }
    let none = h(&[("X-Gitlab-Event", "Push Hook")]);
    assert_eq!(run(Provider::GitLab, &none, BODY).label(), "unsigned");
    let tag = h(&[
        ("X-Gitlab-Token", "s3cret-of-the-hook"),
        ("X-Gitlab-Event", "Tag Push Hook"),
    ]);
    assert_eq!(run(Provider::GitLab, &tag, BODY).label(), "ignored");
}

fn generic_headers(ts: &str, sig: &str) -> Vec<(String, String)> {
    h(&[("X-Drover-Timestamp", ts), ("X-Drover-Signature", sig)])
}

#[test]
fn a_generic_hook_signed_over_its_timestamp_and_body_is_fetched() {
    let headers = generic_headers(&NOW.to_string(), &sign_generic(SECRET, NOW, BODY));
    assert_eq!(run(Provider::Generic, &headers, BODY).label(), "accepted");
    let near = NOW - MAX_SKEW_SECONDS;
    let headers = generic_headers(&near.to_string(), &sign_generic(SECRET, near, BODY));
    assert_eq!(run(Provider::Generic, &headers, BODY).label(), "accepted");
}

#[test]
fn a_generic_hook_from_too_long_ago_or_the_future_is_stale() {
    for ts in [NOW - MAX_SKEW_SECONDS - 1, NOW + MAX_SKEW_SECONDS + 1, 0] {
        let headers = generic_headers(&ts.to_string(), &sign_generic(SECRET, ts, BODY));
        assert_eq!(
            run(Provider::Generic, &headers, BODY),
            Verdict::Refuse(Refusal::Stale {
                age_seconds: NOW - ts
            })
        );
    }
}

#[test]
fn a_generic_hook_whose_timestamp_was_moved_does_not_verify() {
    // Replaying an old delivery with a fresh timestamp breaks the signature.
    let old = NOW - 3600;
    let headers = generic_headers(&NOW.to_string(), &sign_generic(SECRET, old, BODY));
    assert_eq!(
        run(Provider::Generic, &headers, BODY),
        Verdict::Refuse(Refusal::BadSignature)
    );
}

#[test]
fn a_generic_timestamp_that_is_not_plain_unix_seconds_is_malformed() {
    for ts in [
        "+1800000000",
        "1.8e9",
        "",
        " 1800000000",
        "-5",
        "99999999999999999999",
    ] {
        let headers = generic_headers(ts, &sign_generic(SECRET, NOW, BODY));
        assert_eq!(
            run(Provider::Generic, &headers, BODY).label(),
            "malformed",
            "{ts:?}"
        );
    }
}

#[test]
fn the_same_generic_delivery_twice_is_a_replay() {
    let mut replays = Replays::default();
    let headers = generic_headers(&NOW.to_string(), &sign_generic(SECRET, NOW, BODY));
    let d = Delivery {
        provider: Provider::Generic,
        headers: &headers,
        body: BODY,
    };
    assert_eq!(check(&d, SECRET, NOW, &mut replays).label(), "accepted");
    assert_eq!(check(&d, SECRET, NOW + 1, &mut replays).label(), "replay");
}

#[test]
fn an_empty_secret_accepts_nothing() {
    let headers = github_headers(&sign_github(b"", BODY), "push", "d-1");
    let d = Delivery {
        provider: Provider::GitHub,
        headers: &headers,
        body: BODY,
    };
    assert_eq!(
        check(&d, b"", NOW, &mut Replays::default()),
        Verdict::Refuse(Refusal::BadSignature)
    );
}

#[test]
fn a_body_over_the_limit_is_refused_before_anything_else() {
    let body = vec![b'x'; MAX_BODY_BYTES + 1];
    let headers = github_headers(&sign_github(SECRET, &body), "push", "d-1");
    assert_eq!(
        run(Provider::GitHub, &headers, &body),
        Verdict::Refuse(Refusal::TooLarge)
    );
}

#[test]
fn hook_paths_name_exactly_three_dialects() {
    assert_eq!(Provider::from_path("/hooks/github"), Some(Provider::GitHub));
    assert_eq!(Provider::from_path("/hooks/gitlab"), Some(Provider::GitLab));
    assert_eq!(
        Provider::from_path("/hooks/generic"),
        Some(Provider::Generic)
    );
    for p in [
        "/hooks/",
        "/hooks/GitHub",
        "/hooks/github/",
        "/github",
        "/hooks/x",
    ] {
        assert_eq!(Provider::from_path(p), None, "{p}");
    }
}

proptest! {
    #[test]
    fn any_change_to_a_signed_body_is_refused(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        secret in proptest::collection::vec(any::<u8>(), 1..64),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let headers = github_headers(&sign_github(&secret, &body), "push", "d");
        let d = Delivery { provider: Provider::GitHub, headers: &headers, body: &body };
        prop_assert_eq!(check(&d, &secret, NOW, &mut Replays::default()).label(), "accepted");
        if !body.is_empty() {
            let mut changed = body.clone();
            let i = flip.index(changed.len());
            changed[i] ^= 1 << bit;
            let d = Delivery { provider: Provider::GitHub, headers: &headers, body: &changed };
            prop_assert_eq!(check(&d, &secret, NOW, &mut Replays::default()).label(), "bad_signature");
        }
    }

    #[test]
    fn no_header_value_makes_the_check_panic(
        sig in ".{0,80}", ts in ".{0,30}", token in ".{0,40}", id in ".{0,60}",
    ) {
        for provider in [Provider::GitHub, Provider::GitLab, Provider::Generic] {
            let headers = h(&[
                ("X-Hub-Signature-256", &sig), ("X-GitHub-Delivery", &id),
                ("X-Gitlab-Token", &token), ("X-Drover-Timestamp", &ts),
                ("X-Drover-Signature", &sig),
            ]);
            let d = Delivery { provider, headers: &headers, body: BODY };
            let v = check(&d, SECRET, NOW, &mut Replays::default());
            prop_assert!(matches!(v, Verdict::Refuse(_)), "{v:?}");
        }
    }
}
