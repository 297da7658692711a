//! compare's binary on the seed article's arms and on small arms made here. Whole tables are
//! compared with golden files in `tests/golden/`; after checking that a difference is intended,
//! `UPDATE_GOLDEN=1 cargo test -p compare --test cli` writes them anew.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_compare"))
        .args(args)
        .current_dir(root())
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend_from_slice(&["-f", "json"]);
    let out = compare(&all);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

const SEED: [&str; 6] = [
    "--arm",
    "linkerd=fixtures/seed-article/linkerd",
    "--arm",
    "istio=fixtures/seed-article/istio",
    "--baseline",
    "istio",
];

fn row<'a>(c: &'a serde_json::Value, metric: &str) -> &'a serde_json::Value {
    c["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == metric)
        .unwrap_or_else(|| panic!("no row {metric}"))
}

#[test]
fn reproduces_the_articles_per_row_deltas() {
    let c = json(&SEED);
    assert_eq!(c["schema"], "meshbench/comparison/v1.1");
    assert_eq!(c["arms"], serde_json::json!(["istio", "linkerd"]));
    for (metric, delta) in [
        ("control_plane_cpu_millicores", -57.0),
        ("control_plane_memory_bytes", -57.0),
        ("proxy_cpu_millicores_per_pod", -75.0),
        ("proxy_memory_bytes_per_pod", -71.0),
        ("latency_p99_ms", -5.0),
    ] {
        let d = row(&c, metric)["delta_pct"].as_f64().unwrap();
        assert_eq!(d.round(), delta, "{metric}: {d}");
    }
    // What the article's "-12% aggregate" should have been: control plane plus proxies.
    assert_eq!(
        row(&c, "mesh_cpu_millicores_total")["values"]["linkerd"],
        520.0
    );
    assert_eq!(
        row(&c, "mesh_cpu_millicores_total")["values"]["istio"],
        1880.0
    );
    assert_eq!(
        row(&c, "mesh_cpu_millicores_total")["delta_pct"]
            .as_f64()
            .unwrap()
            .round(),
        -72.0
    );
    assert_eq!(
        row(&c, "mesh_memory_bytes_total")["delta_pct"]
            .as_f64()
            .unwrap()
            .round(),
        -71.0
    );
    // Install 45 s vs 200 s: the article's "4x faster".
    assert_eq!(row(&c, "install_s")["values"]["istio"], 200.0);
    // Every proxy uses the same here, so the p95 is the mean; all 200 pods were injected.
    assert_eq!(row(&c, "proxy_cpu_millicores_p95")["values"]["istio"], 8.0);
    assert_eq!(
        row(&c, "proxy_memory_bytes_p95")["values"]["linkerd"],
        (10u64 << 20) as f64
    );
    assert_eq!(row(&c, "injection_coverage")["values"]["linkerd"], 1.0);
    // One repetition: no intervals, and nothing claimed significant.
    assert!(
        c["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ci95"].is_null() && r["significant"].is_null())
    );
}

/// The whole output, against `tests/golden/NAME` (rewritten with `UPDATE_GOLDEN=1`).
fn matches_golden(name: &str, args: &[&str]) {
    let out = compare(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    let actual = String::from_utf8(out.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        return std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(actual == expected, "{name} differs:\n{actual}");
}

#[test]
fn whole_tables_match_their_golden_files() {
    for (format, name) in [
        ("markdown", "seed-article.md"),
        ("csv", "seed-article.csv"),
        ("json", "seed-article.json"),
    ] {
        let mut args = SEED.to_vec();
        args.extend_from_slice(&["-f", format]);
        matches_golden(name, &args);
    }
    // Five repetitions an arm: intervals and verdicts, the same for the same seed.
    let dir = tempfile::tempdir().unwrap();
    let a = arm(dir.path(), "istio", &[280, 290, 270, 285, 275]);
    let b = arm(dir.path(), "linkerd", &[120, 125, 115, 118, 122]);
    matches_golden("repeated.md", &["--arm", &a, "--arm", &b, "-f", "markdown"]);

    // Three arms: a delta (and interval) for each arm against the reference. The third mesh
    // comes from a profile file.
    let kuma = arm(dir.path(), "kuma", &[200, 210, 190, 205, 195]);
    let profile = dir.path().join("kuma.toml");
    std::fs::write(
        &profile,
        "[[profile]]\nmesh = \"kuma\"\ncontrol_plane = \"kuma-system\"\nproxy = \"kuma-sidecar\"\n",
    )
    .unwrap();
    let profile = profile.to_str().unwrap();
    let three = [
        "--arm",
        &a,
        "--arm",
        &b,
        "--arm",
        &kuma,
        "--profile",
        profile,
    ];
    for (format, name) in [("markdown", "three-arms.md"), ("csv", "three-arms.csv")] {
        let mut args = three.to_vec();
        args.extend_from_slice(&["-f", format]);
        matches_golden(name, &args);
    }
    let c = json(&three);
    let deltas = &row(&c, "control_plane_cpu_millicores")["deltas"];
    for other in ["linkerd", "kuma"] {
        assert!(deltas[other]["ci95"].is_array(), "{other}: {deltas}");
        assert_eq!(deltas[other]["significant"], true, "{other}");
    }
    assert_eq!(
        row(&c, "control_plane_cpu_millicores")["delta_pct"],
        deltas["linkerd"]["delta_pct"],
        "v1's delta_pct is the second arm's"
    );
}

#[test]
fn one_arm_alone_is_a_table_of_its_values() {
    let out = compare(&[
        "--arm",
        "linkerd=fixtures/seed-article/linkerd",
        "-f",
        "markdown",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("| Metric | linkerd |"));
    assert_eq!(lines.next(), Some("|---|---|"));
    assert_eq!(
        lines.next(),
        Some("| control_plane_cpu_millicores | 120.0m |")
    );
    // No deltas, so nothing to say about telling them from noise.
    assert!(!text.contains("One repetition per arm"), "{text}");
}

#[test]
fn markdown_says_who_uses_less_and_that_one_run_proves_little() {
    let mut args = SEED.to_vec();
    args.extend_from_slice(&["-f", "markdown"]);
    let out = compare(&args);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("| Metric | istio | linkerd | Delta |"),
        "{text}"
    );
    assert!(
        text.contains("| control_plane_cpu_millicores | 280.0m | 120.0m | linkerd uses 57% less |"),
        "{text}"
    );
    assert!(text.contains("linkerd is 5% faster"), "{text}");
    assert!(text.contains("One repetition per arm"), "{text}");

    let mut args = SEED.to_vec();
    args.extend_from_slice(&["-f", "csv"]);
    let csv = String::from_utf8(compare(&args).stdout).unwrap();
    assert!(
        csv.starts_with("metric,unit,istio,linkerd,delta_pct,ci95_low,ci95_high,significant\n"),
        "{csv}"
    );
}

/// An arm of `reps` repetitions whose control plane uses the given CPU in each.
fn arm(dir: &Path, mesh: &str, cp_cpu: &[u32]) -> String {
    let (ns, proxy) = match mesh {
        "linkerd" => ("linkerd", "linkerd-proxy"),
        "kuma" => ("kuma-system", "kuma-sidecar"),
        _ => ("istio-system", "istio-proxy"),
    };
    for (i, cpu) in cp_cpu.iter().enumerate() {
        let rep = dir.join(mesh).join(format!("{}", i + 1));
        std::fs::create_dir_all(&rep).unwrap();
        let mut csv =
            String::from("run,timestamp,namespace,pod,container,cpu_millicores,memory_bytes\n");
        for snap in 0..3 {
            let ts = format!("2026-11-26T08:0{snap}:00Z");
            csv.push_str(&format!("r,{ts},{ns},cp-0,controller,{cpu},104857600\n"));
            for p in 0..10 {
                csv.push_str(&format!("r,{ts},sample-app,app-{p},{proxy},2,10485760\n"));
                csv.push_str(&format!("r,{ts},sample-app,app-{p},app,1,1048576\n"));
            }
        }
        std::fs::write(rep.join("pods.csv"), csv).unwrap();
    }
    format!("{mesh}={}", dir.join(mesh).display())
}

#[test]
fn repetitions_give_seeded_intervals_and_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let a = arm(dir.path(), "istio", &[280, 290, 270, 285, 275]);
    let b = arm(dir.path(), "linkerd", &[120, 125, 115, 118, 122]);
    let c = json(&["--arm", &a, "--arm", &b]);
    let r = row(&c, "control_plane_cpu_millicores");
    let [lo, hi] = [
        r["ci95"][0].as_f64().unwrap(),
        r["ci95"][1].as_f64().unwrap(),
    ];
    let d = r["delta_pct"].as_f64().unwrap();
    assert!(lo < d && d < hi && hi < 0.0, "{lo} {d} {hi}");
    assert_eq!(r["significant"], true);
    // Same seed, same table; another seed, (slightly) other intervals.
    assert_eq!(json(&["--arm", &a, "--arm", &b]), c);
    let other = json(&["--arm", &a, "--arm", &b, "--seed", "2"]);
    assert_ne!(
        row(&other, "control_plane_cpu_millicores")["ci95"],
        r["ci95"]
    );
    // The median over snapshots is the value; the snapshots' extremes are kept beside it.
    assert_eq!(
        r["snapshot_range"]["istio"],
        serde_json::json!([270.0, 290.0])
    );
    assert!(row(&c, "latency_p99_ms").get("snapshot_range").is_none());
    // Proxies are identical in both arms: delta 0, not significant.
    let p = row(&c, "proxy_cpu_millicores_per_pod");
    assert_eq!(p["delta_pct"], 0.0);

    // Overlapping arms: the interval crosses zero and markdown says so.
    let dir2 = tempfile::tempdir().unwrap();
    let x = arm(dir2.path(), "istio", &[100, 130, 90, 120, 110]);
    let y = arm(dir2.path(), "linkerd", &[105, 95, 125, 115, 100]);
    let out = compare(&["--arm", &x, "--arm", &y, "-f", "markdown"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("control_plane_cpu_millicores") && text.contains("no significant difference"),
        "{text}"
    );
    assert!(!text.contains("One repetition"));
}

#[test]
fn usage_beyond_the_none_arm_gets_an_interval_between_meshes_only() {
    // Node CPU per repetition: none ~600m, linkerd ~1000m, istio ~1300m, so istio's excess over
    // the none arm (700m) is 75% more than linkerd's (400m).
    let dir = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    for (mesh, cpu) in [("none", 600), ("linkerd", 1000), ("istio", 1300)] {
        for (rep, wobble) in [(1, -10), (2, 0), (3, 10)] {
            let d = dir.path().join(mesh).join(rep.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("nodes.csv"),
                format!(
                    "run,timestamp,node,cpu_millicores,cpu_percent,memory_bytes,memory_percent\n\
                     {mesh}-{rep},,node-0,{},,2000000000,\n",
                    cpu + wobble
                ),
            )
            .unwrap();
        }
        args.push("--arm".to_owned());
        args.push(format!("{mesh}={}", dir.path().join(mesh).display()));
    }
    args.extend(["--baseline".to_owned(), "linkerd".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = json(&args);
    let over = &row(&c, "node_cpu_millicores_over_none")["deltas"];
    let istio = &over["istio"];
    assert_eq!(istio["delta_pct"], 75.0);
    let [lo, hi] = [
        istio["ci95"][0].as_f64().unwrap(),
        istio["ci95"][1].as_f64().unwrap(),
    ];
    assert!(0.0 < lo && lo < 75.0 && 75.0 < hi, "[{lo}, {hi}]");
    assert_eq!(istio["significant"], true);
    // Against the none arm itself there is no excess to compare: no delta, no interval.
    assert_eq!(over["none"]["delta_pct"], serde_json::Value::Null);
    assert_eq!(over["none"]["ci95"], serde_json::Value::Null);
    let out = compare(&[&args[..], &["-f", "markdown"]].concat());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("100% less"), "{text}");
}

#[test]
fn fail_if_gates_a_pipeline() {
    let mut args = SEED.to_vec();
    args.extend_from_slice(&[
        "-f",
        "json",
        "-o",
        "/dev/null",
        "--fail-if",
        "latency_p99_ms > 115",
    ]);
    let out = compare(&args);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("latency_p99_ms > 115: istio has 118"),
        "{}",
        stderr(&out)
    );

    let mut args = SEED.to_vec();
    args.extend_from_slice(&[
        "-o",
        "/dev/null",
        "--fail-if",
        "linkerd.latency_p99_ms > 115",
        "--fail-if",
        "delta.control_plane_cpu_millicores > 0",
    ]);
    assert_eq!(compare(&args).status.code(), Some(0));

    let mut args = SEED.to_vec();
    args.extend_from_slice(&[
        "-o",
        "/dev/null",
        "--fail-if",
        "delta.control_plane_cpu_millicores < -50",
    ]);
    assert_eq!(compare(&args).status.code(), Some(3));

    // Written as CI files often do, without spaces.
    let mut args = SEED.to_vec();
    args.extend_from_slice(&["-o", "/dev/null", "--fail-if", "istio.latency_p99_ms>=118"]);
    assert_eq!(compare(&args).status.code(), Some(3));

    // A condition that cannot be read fails before anything is read or written.
    let dir = tempfile::tempdir().unwrap();
    let verdict = dir.path().join("verdict.json");
    for bad in [
        "latency_p99_ms >> 1",
        "nosuch_metric > 1",
        "p99",
        "ghost.latency_p99_ms > 1",
        "latency_p99_ms > NaN",
    ] {
        let mut args = SEED.to_vec();
        args.extend_from_slice(&["-o", verdict.to_str().unwrap(), "--fail-if", bad]);
        let out = compare(&args);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(!verdict.exists(), "{bad}");
    }

    // An arm without a load summary: its latency cannot be checked, which is not a pass.
    let arm_dir = dir.path().join("no-load");
    std::fs::create_dir(&arm_dir).unwrap();
    for f in ["pods.csv", "mesh-install.json"] {
        std::fs::copy(
            root().join("fixtures/seed-article/istio").join(f),
            arm_dir.join(f),
        )
        .unwrap();
    }
    let istio = format!("istio={}", arm_dir.display());
    let out = compare(&[
        "--arm",
        "linkerd=fixtures/seed-article/linkerd",
        "--arm",
        &istio,
        "-o",
        "/dev/null",
        "--fail-if",
        "istio.latency_p99_ms > 1000",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be checked, istio has no value"),
        "{}",
        stderr(&out)
    );
}

/// The seed article's two arms as other `kubectl top pod` tables would give them: without
/// namespaces (no `-A`), or a row per pod instead of per container (no `--containers`).
fn seed_without(dir: &Path, namespaces: bool, containers: bool) -> Vec<String> {
    let mut arms = Vec::new();
    for mesh in ["linkerd", "istio"] {
        let from = root().join("fixtures/seed-article").join(mesh);
        let to = dir.join(mesh);
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(from.join("trafficgen.json"), to.join("trafficgen.json")).unwrap();
        let csv = std::fs::read_to_string(from.join("pods.csv")).unwrap();
        let mut lines = csv.lines();
        let mut out = format!("{}\n", lines.next().unwrap());
        // (run, timestamp, namespace, pod) -> summed CPU and memory, in input order.
        let mut pods: Vec<([String; 4], f64, u64)> = Vec::new();
        for line in lines {
            let c: Vec<&str> = line.split(',').collect();
            let ns = if namespaces { c[2] } else { "" };
            let (cpu, mem): (f64, u64) = (c[5].parse().unwrap(), c[6].parse().unwrap());
            if containers {
                out.push_str(&format!(
                    "{},{},{ns},{},{},{cpu},{mem}\n",
                    c[0], c[1], c[3], c[4]
                ));
                continue;
            }
            let key = [c[0], c[1], ns, c[3]].map(str::to_owned);
            match pods.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, c, m)) => (*c, *m) = (*c + cpu, *m + mem),
                None => pods.push((key, cpu, mem)),
            }
        }
        for ([run, ts, ns, pod], cpu, mem) in pods {
            out.push_str(&format!("{run},{ts},{ns},{pod},,{cpu},{mem}\n"));
        }
        std::fs::write(to.join("pods.csv"), out).unwrap();
        arms.push(format!("{mesh}={}", to.display()));
    }
    arms
}

/// The metrics API stamps each pod with the end of its own window: one sample carries
/// timestamps seconds apart, and is still one snapshot (its sums are not split by them).
#[test]
fn per_pod_timestamps_within_a_sample_keep_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut arms = Vec::new();
    for mesh in ["linkerd", "istio"] {
        let from = root().join("fixtures/seed-article").join(mesh);
        let to = dir.path().join(mesh);
        std::fs::create_dir(&to).unwrap();
        for f in ["trafficgen.json", "mesh-install.json"] {
            std::fs::copy(from.join(f), to.join(f)).unwrap();
        }
        let csv = std::fs::read_to_string(from.join("pods.csv")).unwrap();
        // 08:05:00Z becomes 08:05:00Z-08:05:03Z, by pod: each sample's rows spread over 4 s.
        let spread: String = csv
            .lines()
            .enumerate()
            .map(|(i, line)| {
                let mut cells: Vec<String> = line.split(',').map(str::to_owned).collect();
                if i > 0 {
                    let second = cells[3].len() % 4;
                    cells[1] = cells[1].replace(":00Z", &format!(":0{second}Z"));
                }
                cells.join(",") + "\n"
            })
            .collect();
        std::fs::write(to.join("pods.csv"), spread).unwrap();
        arms.push(format!("{mesh}={}", to.display()));
    }
    let spread = json(&["--arm", &arms[0], "--arm", &arms[1], "--baseline", "istio"]);
    assert_eq!(spread["rows"], json(&SEED)["rows"]);
}

/// A `kubectl top pod` table without `-A` has no namespaces: the control plane cannot be found
/// in it, and its figures (and the mesh totals) are unknown, not zero. Without `--containers`,
/// the proxies are inside their pods' figures: the proxy rows and mesh totals are unknown.
#[test]
fn what_a_snapshot_cannot_show_is_unknown_not_zero() {
    let dir = tempfile::tempdir().unwrap();
    let arms = seed_without(&dir.path().join("no-namespace"), false, true);
    let out = compare(&["--arm", &arms[0], "--arm", &arms[1], "-f", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("pod rows have no namespace") && err.contains("-n NS"),
        "{err}"
    );
    assert!(
        err.contains("no pod row is in the control plane's namespace (istio-system)"),
        "{err}"
    );
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for metric in ["control_plane_cpu_millicores", "mesh_cpu_millicores_total"] {
        assert_eq!(
            row(&c, metric)["values"],
            serde_json::json!({"linkerd": null, "istio": null}),
            "{metric}"
        );
    }
    // The proxies are still found by their container's name.
    assert_eq!(
        row(&c, "proxy_cpu_millicores_per_pod")["values"]["linkerd"],
        2.0
    );

    let arms = seed_without(&dir.path().join("no-container"), true, false);
    let out = compare(&["--arm", &arms[0], "--arm", &arms[1], "-f", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pod rows without containers"),
        "{}",
        stderr(&out)
    );
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        row(&c, "control_plane_cpu_millicores")["values"]["linkerd"],
        120.0
    );
    for metric in [
        "proxy_cpu_millicores_per_pod",
        "mesh_cpu_millicores_total",
        "mesh_memory_bytes_total",
        "proxy_cpu_millicores_p95",
    ] {
        assert_eq!(
            row(&c, metric)["values"],
            serde_json::json!({"linkerd": null, "istio": null}),
            "{metric}"
        );
    }
}

#[test]
fn bad_inputs_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let arm_dir = |name: &str| {
        let p = d.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let empty = arm_dir("linkerd");
    let out = compare(&["--arm", &format!("linkerd={}", empty.display())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("has no files"), "{}", stderr(&out));

    std::fs::write(empty.join("blank.csv"), "\n").unwrap();
    let out = compare(&["--arm", &format!("linkerd={}", empty.display())]);
    assert!(
        stderr(&out).contains("blank.csv: empty file"),
        "{}",
        stderr(&out)
    );

    let junk = arm_dir("istio");
    std::fs::write(junk.join("notes.txt"), "hello\n").unwrap();
    let out = compare(&["--arm", &format!("istio={}", junk.display())]);
    assert!(
        stderr(&out).contains("notes.txt") && stderr(&out).contains("neither"),
        "{}",
        stderr(&out)
    );

    let future = arm_dir("none");
    std::fs::write(
        future.join("t.json"),
        r#"{"schema":"meshbench/trafficgen/v2"}"#,
    )
    .unwrap();
    let out = compare(&["--arm", &format!("none={}", future.display())]);
    assert!(
        stderr(&out).contains("t.json") && stderr(&out).contains("v2"),
        "{}",
        stderr(&out)
    );

    // A repetition directory left empty (a failed run) would count as a run that measured
    // nothing.
    let gap = arm_dir("gap");
    std::fs::create_dir_all(gap.join("1")).unwrap();
    std::fs::create_dir_all(gap.join("2")).unwrap();
    for file in ["pods.csv", "trafficgen.json"] {
        std::fs::copy(
            root().join("fixtures/seed-article/linkerd").join(file),
            gap.join("1").join(file),
        )
        .unwrap();
    }
    let out = compare(&["--arm", &format!("linkerd={}", gap.display())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "{}: a repetition of arm \"linkerd\" with no files",
            gap.join("2").display()
        )),
        "{}",
        stderr(&out)
    );

    // A trafficgen summary without its histogram cannot be merged: named, not guessed around.
    let nohist = arm_dir("nohist");
    let mut summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/seed-article/linkerd/trafficgen.json"))
            .unwrap(),
    )
    .unwrap();
    summary.as_object_mut().unwrap().remove("histogram");
    std::fs::write(nohist.join("load.json"), summary.to_string()).unwrap();
    let out = compare(&["--arm", &format!("linkerd={}", nohist.display())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("load.json") && stderr(&out).contains("histogram"),
        "{}",
        stderr(&out)
    );

    // A mesh-install summary with a field of the wrong type: the field and its line.
    let mistyped = arm_dir("mistyped");
    let install =
        std::fs::read_to_string(root().join("fixtures/seed-article/linkerd/mesh-install.json"))
            .unwrap();
    let (line, text) = install
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("\"pods\":"))
        .unwrap();
    let broken = install.replacen(text, &text.replace(':', ": \"many\", \"was\":"), 1);
    std::fs::write(mistyped.join("mesh-install.json"), broken).unwrap();
    let out = compare(&["--arm", &format!("linkerd={}", mistyped.display())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "mesh-install.json: not a mesh-install summary: at \"pods\", line {}",
            line + 1
        )),
        "{}",
        stderr(&out)
    );

    let out = compare(&["--arm", "cilium=fixtures/seed-article/linkerd/../istio"]);
    // The arm's mesh comes from its mesh-install summary (istio), not the name: fine.
    assert!(out.status.success(), "{}", stderr(&out));
    let unknown = arm_dir("cilium");
    std::fs::copy(
        root().join("fixtures/seed-article/linkerd/pods.csv"),
        unknown.join("pods.csv"),
    )
    .unwrap();
    let out = compare(&["--arm", &format!("cilium={}", unknown.display())]);
    assert!(
        stderr(&out).contains("unknown mesh \"cilium\""),
        "{}",
        stderr(&out)
    );

    for (args, code) in [
        (&["--arm", "linkerd"][..], 2),
        (&SEED[..4], 0),
        (
            &[
                "--arm",
                "linkerd=fixtures/seed-article/linkerd",
                "--baseline",
                "istio",
            ][..],
            2,
        ),
    ] {
        let out = compare(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn unlike_arms_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &str, to: &str| {
        let dest = dir.path().join(to);
        std::fs::create_dir_all(&dest).unwrap();
        for f in ["pods.csv", "trafficgen.json", "mesh-install.json"] {
            std::fs::copy(
                root().join("fixtures/seed-article").join(from).join(f),
                dest.join(f),
            )
            .unwrap();
        }
        dest
    };
    let l = copy("linkerd", "linkerd");
    let i = copy("istio", "istio");
    let t = i.join("trafficgen.json");
    let text = std::fs::read_to_string(&t)
        .unwrap()
        .replace("\"connections\": 50", "\"connections\": 100");
    std::fs::write(&t, text).unwrap();
    let (linkerd, istio) = (
        format!("linkerd={}", l.display()),
        format!("istio={}", i.display()),
    );
    let both = || compare(&["--arm", &linkerd, "--arm", &istio, "-o", "/dev/null"]);
    let out = both();
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("arms differ in connections"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("saturated"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("differ in loop"), "{}", stderr(&out));

    // An open-loop arm against a closed-loop one: latency that does not compare.
    let open = std::fs::read_to_string(&t).unwrap();
    let closed = open
        .replace("\"mode\": \"open\"", "\"mode\": \"closed\"")
        .replace("\"rate_target\": 200.0", "\"rate_target\": null");
    assert_ne!(open, closed);
    std::fs::write(&t, closed).unwrap();
    let err = stderr(&both());
    assert!(
        err.contains("load runs differ in loop (linkerd open, istio closed)"),
        "{err}"
    );
    std::fs::write(&t, &open).unwrap();

    // Uniform against Poisson arrivals (v1.1 summaries): tails that do not compare. A v1
    // summary does not say, and is not counted against either.
    let lt = l.join("trafficgen.json");
    let uniform = std::fs::read_to_string(&lt).unwrap();
    let with_arrival = |text: &str, arrival: &str| {
        text.replace(
            "\"mode\": \"open\",",
            &format!("\"mode\": \"open\",\n  \"arrival\": \"{arrival}\","),
        )
    };
    std::fs::write(&t, with_arrival(&open, "poisson")).unwrap();
    assert!(!stderr(&both()).contains("differ in arrivals"));
    std::fs::write(&lt, with_arrival(&uniform, "uniform")).unwrap();
    let err = stderr(&both());
    assert!(
        err.contains("load runs differ in arrivals (linkerd uniform, istio poisson)"),
        "{err}"
    );
    std::fs::write(&t, with_arrival(&open, "uniform")).unwrap();
    assert!(!stderr(&both()).contains("differ in arrivals"));
    std::fs::write(&t, &open).unwrap();
    std::fs::write(&lt, uniform).unwrap();

    // Two generators in one repetition on the same Poisson seed sent one schedule twice.
    let seeded = |seed: u32, connections: u32| {
        with_arrival(&open, "poisson")
            .replace(
                "\"mode\": \"open\",",
                &format!("\"mode\": \"open\",\n  \"seed\": {seed},"),
            )
            .replace(
                "\"connections\": 100",
                &format!("\"connections\": {connections}"),
            )
    };
    let second = i.join("trafficgen-b.json");
    std::fs::write(&t, seeded(7, 100)).unwrap();
    std::fs::write(&second, seeded(7, 99)).unwrap();
    let err = stderr(&both());
    assert!(
        err.contains("two load runs used the same Poisson seed"),
        "{err}"
    );
    std::fs::write(&second, seeded(8, 99)).unwrap();
    assert!(!stderr(&both()).contains("same Poisson seed"));
    std::fs::remove_file(&second).unwrap();
    std::fs::write(&t, &open).unwrap();

    // A load run whose client was saturated, or that was interrupted, is named.
    let text = std::fs::read_to_string(&t)
        .unwrap()
        .replace("\"saturated\": false", "\"saturated\": true")
        .replace("\"interrupted\": false", "\"interrupted\": true");
    std::fs::write(&t, text).unwrap();
    let out = both();
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("arm \"istio\"") && err.contains("client was saturated"),
        "{err}"
    );
    assert!(err.contains("the load run was interrupted"), "{err}");
    assert!(!err.contains("copies"), "{err}");

    // A repetition that is a copy of another, or one directory given as two arms, is named with
    // the copied files.
    let reps = dir.path().join("reps");
    for r in ["1", "2"] {
        copy("linkerd", &format!("reps/{r}"));
    }
    std::fs::write(reps.join("2/trafficgen.json"), std::fs::read(&t).unwrap()).unwrap();
    let reps_arm = format!("again={}", reps.display());
    let out = compare(&["--arm", &reps_arm, "--arm", &linkerd, "-o", "/dev/null"]);
    assert!(out.status.success());
    let err = stderr(&out);
    let copies: Vec<&str> = err.lines().filter(|l| l.contains("same bytes")).collect();
    assert_eq!(copies.len(), 2, "{err}");
    assert!(
        copies[0].contains("2 (arm \"again\") has files with the same bytes as")
            && copies[0].ends_with("describe copies")
            && copies[0].contains("'s (mesh-install.json, pods.csv):"),
        "{err}"
    );
    assert!(
        copies[1].contains("(mesh-install.json, pods.csv, trafficgen.json)"),
        "{err}"
    );
}

#[test]
fn plots_are_svg_charts_naming_the_arms() {
    let dir = tempfile::tempdir().unwrap();
    let plots = dir.path().join("plots");
    let mut args = SEED.to_vec();
    let p = plots.to_str().unwrap().to_owned();
    args.extend_from_slice(&["-o", "/dev/null", "--plot", &p]);
    let out = compare(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    for name in [
        "latency",
        "control_plane_cpu_millicores",
        "mesh_memory_bytes_total",
    ] {
        let svg = std::fs::read_to_string(plots.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{name}");
        assert!(svg.contains("linkerd") && svg.contains("istio"), "{name}");
    }
    let latency = std::fs::read_to_string(plots.join("latency.svg")).unwrap();
    assert!(
        latency.contains("99.9%") && latency.contains("<polyline"),
        "a nines axis and lines"
    );

    // A --plot that is a file, and too few resamples for a 95% interval: usage errors, up front.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let mut args = SEED.to_vec();
    args.extend_from_slice(&["--plot", file.to_str().unwrap(), "-o", "/dev/null"]);
    let out = compare(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("exists and is not a directory"),
        "{}",
        stderr(&out)
    );
    let mut args = SEED.to_vec();
    args.extend_from_slice(&["--bootstrap", "1", "-o", "/dev/null"]);
    let out = compare(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("100.."), "{}", stderr(&out));
}

#[test]
fn profile_files_add_meshes_without_code() {
    let dir = tempfile::tempdir().unwrap();
    let arm_dir = dir.path().join("cilium");
    std::fs::create_dir_all(&arm_dir).unwrap();
    std::fs::copy(
        root().join("fixtures/seed-article/linkerd/pods.csv"),
        arm_dir.join("pods.csv"),
    )
    .unwrap();
    let profile = dir.path().join("profiles.toml");
    std::fs::write(
        &profile,
        "# Cilium: its agents run in kube-system here\n[[profile]]\nmesh = \"cilium\"\ncontrol_plane = \"kube-system\"\nproxy = \"cilium-envoy\"\n",
    )
    .unwrap();
    let arm = format!("cilium={}", arm_dir.display());
    let c = json(&["--arm", &arm, "--profile", profile.to_str().unwrap()]);
    // kube-system in the fixture: 3 + 3 + 41 + 74 + 4 millicores.
    assert_eq!(
        row(&c, "control_plane_cpu_millicores")["values"]["cilium"],
        125.0
    );

    std::fs::write(
        &profile,
        "[[profile]]\nmesh = \"cilium\"\nnamespace = \"x\"\n",
    )
    .unwrap();
    let out = compare(&["--arm", &arm, "--profile", profile.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("profiles.toml") && stderr(&out).contains("namespace"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn node_usage_over_a_no_mesh_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let arm = |name: &str, per_node_cpu: u32, per_node_mem_mi: u64| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let mut csv = String::from(
            "run,timestamp,node,cpu_millicores,cpu_percent,memory_bytes,memory_percent\n",
        );
        for snap in 0..3 {
            for node in 0..4 {
                csv.push_str(&format!(
                    "r,2026-11-26T08:0{snap}:00Z,node-{node},{per_node_cpu},10,{},20\n",
                    per_node_mem_mi << 20
                ));
            }
            // A node without metrics does not count.
            csv.push_str(&format!("r,2026-11-26T08:0{snap}:00Z,node-9,,,,\n"));
        }
        std::fs::write(d.join("nodes.csv"), csv).unwrap();
        format!("{name}={}", d.display())
    };
    let none = arm("none", 250, 1024);
    let linkerd = arm("linkerd", 400, 1536);
    let c = json(&["--arm", &none, "--arm", &linkerd]);
    let total = row(&c, "node_cpu_millicores_total");
    assert_eq!(total["values"]["none"], 1000.0);
    assert_eq!(total["values"]["linkerd"], 1600.0);
    assert_eq!(total["delta_pct"], 60.0);
    let over = row(&c, "node_cpu_millicores_over_none");
    assert_eq!(over["values"]["none"], 0.0);
    assert_eq!(over["values"]["linkerd"], 600.0);
    let over_mem = row(&c, "node_memory_bytes_over_none");
    assert_eq!(over_mem["values"]["linkerd"], (2048u64 << 20) as f64);
    // Without a none arm there is no baseline to subtract.
    let c = json(&["--arm", &linkerd]);
    assert!(row(&c, "node_cpu_millicores_over_none")["values"]["linkerd"].is_null());
}

#[test]
fn help_ends_with_the_pipeline() {
    let out = compare(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let examples = help.split("Examples:").nth(1).expect("an Examples block");
    assert!(examples.contains("compare --arm linkerd=runs/linkerd --arm istio=runs/istio"));
    assert!(
        help.trim_end()
            .ends_with("top-parse --run linkerd-1 -o runs/linkerd/1/pods.csv")
    );
    let out = compare(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}
