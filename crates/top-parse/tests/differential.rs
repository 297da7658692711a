//! Differential test against the parser meshbench replaces: the seed's
//! `parse-benchmark-results.py` (kept unchanged in `fixtures/seed/`), run on the same
//! `kubectl top pod -A` fixtures as top-parse.
//!
//! Where the Python is right, the numbers must agree:
//! - its "control plane" CPU and memory lines are really sums over every pod of the file;
//! - its CPU and memory deltas compare the pods of the `linkerd` and `istio-system` namespaces.
//!
//! Where it is wrong, this test pins down how, so the difference is documented rather than
//! hidden: the "control plane" label is on the all-pods sum, and its "aggregate" is the mean of
//! two percentages of different resources.

use std::path::{Path, PathBuf};
use std::process::Command;

use meshbench_formats::usage::{PodUsageRow, read_pod_csv};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const LINKERD: &str = "fixtures/kubectl-top/pods-all-namespaces.txt";
const ISTIO: &str = "fixtures/kubectl-top/istio-pods-all-namespaces.txt";

fn top_parse(input: &str) -> Vec<PodUsageRow> {
    let out = Command::new(env!("CARGO_BIN_EXE_top-parse"))
        .arg(input)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_pod_csv(out.stdout.as_slice()).unwrap()
}

/// The Python's printed values, by label.
fn python() -> Vec<(String, f64)> {
    let out = Command::new("python3")
        .arg("fixtures/seed/parse-benchmark-results.py")
        .args([LINKERD, ISTIO])
        .current_dir(root())
        .output()
        .expect("python3 is needed for the differential test (it is on the project's machines)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .filter_map(|line| {
            let (label, value) = line.split_once(": ")?;
            let number: String = value
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
                .collect();
            Some((label.to_owned(), number.parse().ok()?))
        })
        .collect()
}

fn value(printed: &[(String, f64)], label: &str) -> f64 {
    printed
        .iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("the Python printed no {label:?}: {printed:?}"))
        .1
}

fn sums<'a>(rows: impl Iterator<Item = &'a PodUsageRow>) -> (f64, f64) {
    rows.fold((0.0, 0.0), |(cpu, mem), r| {
        (
            cpu + r.cpu_millicores.millicores_f64(),
            mem + r.memory_bytes as f64 / 1048576.0,
        )
    })
}

fn delta(a: f64, b: f64) -> f64 {
    (a - b) / b * 100.0
}

#[test]
fn totals_and_deltas_agree_with_the_python_where_it_is_right() {
    let printed = python();
    let linkerd = top_parse(LINKERD);
    let istio = top_parse(ISTIO);

    // "control plane" lines: in fact the sum over every pod in the file.
    let (l_cpu, l_mem) = sums(linkerd.iter());
    let (i_cpu, i_mem) = sums(istio.iter());
    assert_eq!(value(&printed, "Linkerd control plane CPU"), l_cpu);
    assert_eq!(value(&printed, "Linkerd control plane Memory"), l_mem);
    assert_eq!(value(&printed, "Istio control plane CPU"), i_cpu);
    assert_eq!(value(&printed, "Istio control plane Memory"), i_mem);

    // Its deltas use the control-plane namespaces: those agree.
    let in_ns = |rows: &[PodUsageRow], ns: &'static str| {
        sums(
            rows.iter()
                .filter(move |r| r.namespace.as_deref() == Some(ns)),
        )
    };
    let (lc_cpu, lc_mem) = in_ns(&linkerd, "linkerd");
    let (ic_cpu, ic_mem) = in_ns(&istio, "istio-system");
    let cpu_delta = delta(lc_cpu, ic_cpu);
    let mem_delta = delta(lc_mem, ic_mem);
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    assert_eq!(value(&printed, "CPU Overhead Delta"), round2(cpu_delta));
    assert_eq!(value(&printed, "Memory Overhead Delta"), round2(mem_delta));

    // Where it is wrong: the printed "control plane" CPU is not the control plane's.
    assert_ne!(value(&printed, "Linkerd control plane CPU"), lc_cpu);
    assert_eq!(lc_cpu, 57.0, "linkerd namespace: 42m + 7m + 8m");
    // ... and its "aggregate" is the mean of a CPU and a memory percentage, which is not the
    // change of any quantity: here it differs from both the CPU and the memory delta.
    let aggregate = value(&printed, "Aggregate Overhead Delta");
    assert_eq!(aggregate, round2((cpu_delta + mem_delta) / 2.0));
    assert!((aggregate - cpu_delta).abs() > 1.0 && (aggregate - mem_delta).abs() > 1.0);
}

#[test]
fn the_python_breaks_on_layouts_that_top_parse_reads() {
    // `kubectl top pod -A --containers` (the layout that shows proxies): the Python takes the
    // container name for the CPU and fails; top-parse reads every container.
    const CONTAINERS: &str = "fixtures/kubectl-top/containers-all-namespaces.txt";
    let out = Command::new("python3")
        .arg("fixtures/seed/parse-benchmark-results.py")
        .args([CONTAINERS, ISTIO])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ValueError"));
    let rows = top_parse(CONTAINERS);
    assert_eq!(rows.len(), 18);
    let proxies = rows
        .iter()
        .filter(|r| r.container.as_deref() == Some("linkerd-proxy"))
        .count();
    assert_eq!(proxies, 6);

    // `--sum`: the Python warns that the footer lines are malformed and never checks them;
    // top-parse recognises the footer and checks it against the rows.
    let out = Command::new("python3")
        .arg("fixtures/seed/parse-benchmark-results.py")
        .args(["fixtures/kubectl-top/pods-all-namespaces-sum.txt", ISTIO])
        .current_dir(root())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("Skipping malformed line").count(), 2, "{text}");
    assert_eq!(
        top_parse("fixtures/kubectl-top/pods-all-namespaces-sum.txt").len(),
        10
    );
}
