//! Every committed fuzz seed (`fuzz/seeds/load_validate_render`, with CR, CRLF,
//! NEL/LS/PS line breaks, bidi and zero-width characters, hostile podTemplates)
//! replayed on stable the way the fuzz target places it: the first byte picks which
//! file of a valid fleet the rest replaces or joins. No seed may panic the core, and
//! every refusal names a file.

use std::panic::{AssertUnwindSafe, catch_unwind};

use drover_core::load::SourceFile;

use super::support::*;

#[test]
fn every_fuzz_seed_loads_validates_and_renders_or_is_refused_without_a_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds/load_validate_render");
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .expect("the seed corpus")
        .map(|e| e.expect("a seed").path())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 80, "{} seeds", seeds.len());
    let mut refused = 0;
    for seed in &seeds {
        let data = std::fs::read(seed).unwrap();
        let Some((&selector, input)) = data.split_first() else {
            continue;
        };
        let mut files = fleet_with(&[]);
        match selector % 8 {
            i @ 0..=4 => files[usize::from(i)].bytes = input.to_vec(),
            5 => {
                files[4].bytes.extend_from_slice(b"\n---\n");
                files[4].bytes.extend_from_slice(input);
            }
            _ => files.push(SourceFile {
                path: "daemons/fuzz.yaml".into(),
                bytes: input.to_vec(),
            }),
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| match load(&files) {
            Ok(f) => {
                render_all(&f);
                None
            }
            Err(d) => Some(d),
        }));
        match outcome {
            Err(_) => panic!("seed {} panicked the core", seed.display()),
            Ok(Some(d)) => {
                refused += 1;
                let text = d.to_string();
                assert!(
                    !text.chars().any(|c| c.is_control() && c != '\n'),
                    "{text:?}"
                );
                for e in &d.0 {
                    assert!(!e.path.is_empty(), "{}: {e}", seed.display());
                }
            }
            Ok(None) => {}
        }
    }
    // The line-ending seeds that must be refused are.
    assert!(
        refused >= 40,
        "only {refused} of {} seeds refused",
        seeds.len()
    );
}
