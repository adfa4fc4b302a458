//! Criterion benches of the pure core on synthetic fleets of 10 to 5,000 DaemonSets:
//! load+validate, render, diff (pairing two renders and comparing every pair), plan
//! (the full offline plan with blast radius over 100 nodes), and writing the rendered
//! set as YAML (drover's emitter, and serde_yaml's as the baseline).
//!
//! After criterion's own report, a linearity check times each step again at more
//! sizes (median of a few runs, same process, so only ratios matter) and prints the
//! least-squares slope (ns per DaemonSet) and the per-DaemonSet cost at 5,000 over
//! that at 50. A ratio near 1 is linear; a ratio that grows with size is not.
//!
//! `cargo bench --bench core` (all), `cargo bench --bench core -- render` (one step),
//! `DROVER_BENCH_LINEARITY=0` skips the linearity check, `=only` runs only it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use drover::core::diff::{field_changes, impact, normalize};
use drover::core::fleet::Fleet;
use drover::core::limits::LIMITS;
use drover::core::load::SourceFile;
use drover::core::plan::{NodeInfo, PlanMeta, compare_renders, parse_node_list, plan};
use drover::core::render::{DesiredSet, RenderContext, render};
use drover::core::validate::load_fleet;

#[allow(dead_code, reason = "the generator binary uses the rest")]
#[path = "support/fleet.rs"]
mod fleet;

const GROUPS: usize = 5;
const NODES: usize = 100;
const SIZES: [usize; 4] = [10, 50, 500, 5_000];
const LINEARITY_SIZES: [usize; 6] = [10, 50, 500, 1_000, 2_500, 5_000];

/// Everything the steps need for one fleet size: base (revision 1) and head
/// (revision 2, every 10th daemon changed).
struct Input {
    daemonsets: usize,
    head_files: Vec<SourceFile>,
    head_fleet: Fleet,
    base: DesiredSet,
    head: DesiredSet,
    nodes: Vec<NodeInfo>,
}

fn source_files(spec: &fleet::FleetSpec) -> Vec<SourceFile> {
    fleet::files(spec)
        .into_iter()
        .map(|(path, text)| SourceFile {
            path,
            bytes: text.into_bytes(),
        })
        .collect()
}

fn load(files: &[SourceFile]) -> Fleet {
    load_fleet(files, &LIMITS).unwrap_or_else(|d| panic!("generated fleet is invalid: {d:?}"))
}

fn render_at(f: &Fleet, commit: &str) -> DesiredSet {
    let ctx = RenderContext {
        commit: Some(commit.into()),
    };
    render(f, &ctx, LIMITS.max_rendered_bytes).expect("render")
}

fn input(daemonsets: usize) -> Input {
    let base_spec = fleet::FleetSpec::with_daemonsets(daemonsets, GROUPS);
    let head_spec = fleet::FleetSpec {
        revision: 2,
        ..base_spec.clone()
    };
    let head_files = source_files(&head_spec);
    let base = render_at(&load(&source_files(&base_spec)), "a".repeat(40).as_str());
    let head_fleet = load(&head_files);
    let head = render_at(&head_fleet, "b".repeat(40).as_str());
    assert_eq!(head.items.len(), base_spec.daemonsets());
    let nodes = parse_node_list(&fleet::nodes_yaml(NODES, GROUPS)).expect("node list");
    Input {
        daemonsets: base_spec.daemonsets(),
        head_files,
        head_fleet,
        base,
        head,
        nodes,
    }
}

/// The steps, each a function of the prepared input.
type Step = (&'static str, fn(&Input) -> usize);

fn step_load_validate(i: &Input) -> usize {
    load(&i.head_files).daemons.len()
}

fn step_render(i: &Input) -> usize {
    render_at(&i.head_fleet, "b").items.len()
}

/// Pairing two renders and comparing every pair: normalise, impact, field changes.
fn step_diff(i: &Input) -> usize {
    compare_renders(Some(&i.base), &i.head)
        .iter()
        .map(|c| match (&c.before, &c.after) {
            (Some(b), Some(a)) => {
                let (b, a) = (normalize(b), normalize(a));
                black_box(impact(&b, &a));
                field_changes(&b, &a).len()
            }
            _ => 1,
        })
        .sum()
}

fn step_plan(i: &Input) -> usize {
    let comparisons = compare_renders(Some(&i.base), &i.head);
    let p = plan(
        &i.head_fleet,
        &i.head,
        comparisons,
        Some(&i.nodes),
        PlanMeta::default(),
    );
    p.summary.update
}

/// The rendered set as the YAML stream `drover render` prints (drover's emitter).
fn step_emit_yaml(i: &Input) -> usize {
    drover::core::render::to_yaml_stream(&i.head).len()
}

/// The same stream from serde_yaml, the emitter drover used before: the baseline for
/// `emit_yaml` (it leaves `yes`, `1_000`, `12:30`... unquoted).
fn step_emit_yaml_serde_yaml(i: &Input) -> usize {
    i.head
        .items
        .iter()
        .map(|d| serde_yaml::to_string(&d.manifest).map_or(0, |y| y.len() + 4))
        .sum()
}

const STEPS: [Step; 6] = [
    ("load_validate", step_load_validate),
    ("render", step_render),
    ("diff", step_diff),
    ("plan", step_plan),
    ("emit_yaml", step_emit_yaml),
    ("emit_yaml_serde_yaml", step_emit_yaml_serde_yaml),
];

fn criterion_benches(c: &mut Criterion, inputs: &[Input]) {
    for (name, step) in STEPS {
        let mut g = c.benchmark_group(name);
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for i in inputs {
            g.throughput(Throughput::Elements(i.daemonsets as u64));
            g.bench_with_input(BenchmarkId::from_parameter(i.daemonsets), i, |b, i| {
                b.iter(|| black_box(step(black_box(i))));
            });
        }
        g.finish();
    }
}

/// Median wall time of `step` over at least 5 runs and about 0.5 s.
fn median_time(step: fn(&Input) -> usize, i: &Input) -> Duration {
    black_box(step(i));
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5 || (start.elapsed() < Duration::from_millis(500) && times.len() < 200) {
        let t = Instant::now();
        black_box(step(i));
        times.push(t.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

/// Least-squares fit `t = a + b·n`; returns `(a, b)` in ns and ns per item.
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let b = sxy / sxx;
    (my - b * mx, b)
}

fn linearity(filter: Option<&str>) {
    println!("\nlinearity (median of >= 5 runs per size, one process; ratios only):");
    let inputs: Vec<Input> = LINEARITY_SIZES.iter().map(|&n| input(n)).collect();
    println!(
        "{:<14} {:>14} {:>12} {:>13} {:>11}  per-DaemonSet cost by size (us)",
        "step", "slope ns/DS", "intercept", "per-DS 5k/50", "R^2"
    );
    for (name, step) in STEPS {
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let points: Vec<(f64, f64)> = inputs
            .iter()
            .map(|i| (i.daemonsets as f64, median_time(step, i).as_nanos() as f64))
            .collect();
        let (a, b) = fit(&points);
        let per = |n: usize| {
            points
                .iter()
                .find(|p| p.0 as usize == n)
                .map(|p| p.1 / p.0)
                .unwrap_or(f64::NAN)
        };
        let my = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
        let ss_tot: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
        let ss_res: f64 = points.iter().map(|p| (p.1 - a - b * p.0).powi(2)).sum();
        let costs: Vec<String> = points
            .iter()
            .map(|p| format!("{}:{:.1}", p.0, p.1 / p.0 / 1e3))
            .collect();
        println!(
            "{:<14} {:>14.0} {:>10.2}ms {:>13.2} {:>11.4}  {}",
            name,
            b,
            a / 1e6,
            per(5_000) / per(50),
            1.0 - ss_res / ss_tot,
            costs.join(" ")
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` runs this without `--bench`: check each step once.
    let benchmarking = args.iter().any(|a| a == "--bench");
    let filter = args[1..]
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str);
    let mode = std::env::var("DROVER_BENCH_LINEARITY").unwrap_or_default();
    if !benchmarking {
        let i = input(50);
        for (name, step) in STEPS {
            assert!(step(&i) > 0, "{name} did nothing");
        }
        println!("bench steps checked once (run with `cargo bench` to measure)");
        return;
    }
    if mode != "only" {
        let inputs: Vec<Input> = SIZES.iter().map(|&n| input(n)).collect();
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c, &inputs);
        c.final_summary();
    }
    if mode != "0" {
        linearity(filter);
    }
}
