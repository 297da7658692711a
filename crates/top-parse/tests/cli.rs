//! The built binary on the fixtures in `fixtures/kubectl-top/`, compared with golden files in
//! `tests/golden/`. Regenerate the golden files, after checking the difference is intended, with
//! `UPDATE_GOLDEN=1 cargo test -p top-parse --test cli`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> String {
    format!("fixtures/kubectl-top/{name}")
}

/// Starts top-parse from the repository root, its stdin, stdout and stderr piped.
fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_top-parse"))
        .args(args)
        .current_dir(root())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run top-parse")
}

/// Runs top-parse from the repository root.
fn top_parse(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = spawn(args);
    // Written from another thread: top-parse streams, so a large input fills its stdout pipe
    // before it has read all of stdin.
    let mut pipe = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&stdin);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

fn ok(args: &[&str]) -> String {
    let out = top_parse(args, b"");
    assert!(out.status.success(), "{args:?} failed: {}", stderr(&out));
    stdout(&out)
}

const LABELS: [&str; 4] = ["--run", "linkerd-1", "--timestamp", "2026-11-26T08:00:00Z"];

#[test]
fn every_layout_matches_its_golden_file() {
    for (input, extra) in [
        ("pods.txt", &[][..]),
        ("pods-all-namespaces.txt", &[][..]),
        ("pods-all-namespaces-sum.txt", &[][..]),
        ("containers.txt", &[][..]),
        ("containers-all-namespaces.txt", &[][..]),
        (
            "containers-all-namespaces-no-headers.txt",
            &["--layout", "containers-all-namespaces"][..],
        ),
        ("nodes.txt", &[][..]),
        ("nodes-pre-1.23.txt", &[][..]),
        ("nodes-swap.txt", &[][..]),
        ("misaligned.txt", &[][..]),
        ("metrics-pods.json", &[][..]),
        ("metrics-nodes.json", &[][..]),
    ] {
        let path = fixture(input);
        let mut args = vec![path.as_str()];
        args.extend_from_slice(&LABELS);
        args.extend_from_slice(extra);
        let name = input.rsplit_once('.').unwrap().0;
        golden(&format!("{name}.csv"), &ok(&args));
    }
}

#[test]
fn json_and_ndjson_outputs() {
    let input = fixture("containers-all-namespaces.txt");
    let mut args = vec![input.as_str(), "-f", "json"];
    args.extend_from_slice(&LABELS);
    let json = ok(&args);
    golden("containers-all-namespaces.json", &json);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["schema"], "meshbench/pod-usage/v1");
    assert_eq!(doc["rows"].as_array().unwrap().len(), 18);

    let input = fixture("metrics-nodes.json");
    let nd = ok(&[input.as_str(), "-f", "ndjson"]);
    golden("metrics-nodes.ndjson", &nd);
    for line in nd.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["schema"], "meshbench/node-usage/v1");
    }
}

#[test]
fn stdin_and_several_inputs() {
    let text = std::fs::read(root().join(fixture("pods.txt"))).unwrap();
    let out = top_parse(&["-"], &text);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 4);
    // No argument also means stdin.
    assert_eq!(stdout(&top_parse(&[], &text)), stdout(&out));

    // Several inputs of one kind: rows of all, one header.
    let a = fixture("pods.txt");
    let b = fixture("containers.txt");
    let both = ok(&[a.as_str(), b.as_str()]);
    assert_eq!(both.lines().count(), 1 + 3 + 8);
    assert_eq!(both.matches("run,timestamp").count(), 1);
}

#[test]
fn metrics_api_keeps_precision_and_its_own_timestamps() {
    let input = fixture("metrics-pods.json");
    let csv = ok(&[input.as_str(), "--timestamp", "2000-01-01T00:00:00Z"]);
    assert!(csv.contains(",2026-11-26T07:59:52Z,linkerd,linkerd-destination-6d9b8c7f5-h2xkp,destination,30.122871,62914560\n"), "{csv}");
    // 2748180Ki in bytes
    assert!(csv.contains(",nginx,0,2814136320\n"), "{csv}");
    assert!(!csv.contains("2000-01-01"));
}

#[test]
fn output_file_is_complete_or_absent() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("rows.csv");
    let target_arg = target.to_str().unwrap();

    let good = fixture("pods.txt");
    let out = top_parse(&[good.as_str(), "-o", target_arg], b"");
    assert!(out.status.success());
    assert!(stdout(&out).is_empty());
    let before = std::fs::read_to_string(&target).unwrap();
    assert_eq!(before.lines().count(), 4);

    // A bad second input: the error names it and the old file stays as it was.
    let bad = fixture("bad/short-line.txt");
    let out = top_parse(&[good.as_str(), bad.as_str(), "-o", target_arg], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), before);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary file left behind"
    );

    let fresh = dir.path().join("fresh.csv");
    let out = top_parse(&[bad.as_str(), "-o", fresh.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(!fresh.exists());
}

/// Runs a bad input and returns stderr, checking for exit code 1 and no panic.
fn fails(args: &[&str]) -> String {
    let out = top_parse(args, b"");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("top-parse: error: "), "{err}");
    err
}

#[test]
fn bad_lines_name_file_line_and_expectation() {
    let input = fixture("bad/short-line.txt");
    let err = fails(&[input.as_str()]);
    assert!(err.contains("bad/short-line.txt:3: expected 4 columns (NAMESPACE NAME CPU(cores) MEMORY(bytes)), found 3"), "{err}");
    assert!(err.contains("| kube-system coredns-2   3m"), "{err}");
}

#[test]
fn skip_bad_lines_warns_counts_and_goes_on() {
    let input = fixture("bad/short-line.txt");
    let out = top_parse(&[input.as_str(), "--skip-bad-lines"], b"");
    assert!(out.status.success());
    assert_eq!(stdout(&out).lines().count(), 3);
    let err = stderr(&out);
    assert!(err.contains("short-line.txt:3: skipped"), "{err}");
    assert!(err.contains("skipped 1 bad lines"), "{err}");
}

#[test]
fn each_kind_of_bad_input_has_its_own_message() {
    for (input, expected) in [
        ("bad/empty.txt", "empty input"),
        ("bad/blank.txt", "empty input"),
        ("bad/nul-byte.txt", "nul-byte.txt:2: binary data"),
        ("bad/image.png", "image.png:1: binary data"),
        ("bad/utf-16.txt", "utf-16.txt: UTF-16 text"),
        ("bad/unknown-column.txt", "unknown column \"GPU(cores)\""),
        ("bad/out-of-range.txt", "out of the supported range"),
        ("bad/bad-quantity.txt", "expected 3 columns"),
        (
            "bad/metrics-unavailable.txt",
            "kubectl message (\"Metrics API not available\"), not a table: kubectl could not \
             reach the metrics API (is metrics-server installed and ready?)",
        ),
        ("bad/truncated.json", "truncated.json:1:"),
        (
            "bad/status.json",
            "error Status (Failure): the server could not find",
        ),
        (
            "bad/two-layouts.txt",
            "two-layouts.txt:3: a header of another layout than the first table's",
        ),
        ("does-not-exist.txt", "does-not-exist.txt: cannot read"),
    ] {
        let path = if input.starts_with("bad/") {
            fixture(input)
        } else {
            input.to_owned()
        };
        let err = fails(&[path.as_str()]);
        assert!(
            err.contains(expected),
            "{input}: expected {expected:?} in: {err}"
        );
    }
}

#[test]
fn long_lines_are_quoted_in_part_and_bounded_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let header = "NAMESPACE   NAME   CPU(cores)   MEMORY(bytes)\n";
    // A bad line of 3,000 bytes: the message quotes its start and says how long it is.
    let long = dir.path().join("long.txt");
    std::fs::write(&long, format!("{header}{}\n", "b".repeat(3000))).unwrap();
    let err = fails(&[long.to_str().unwrap()]);
    assert!(err.contains("long.txt:2: expected 4 columns"), "{err}");
    assert!(err.contains("… (3000 bytes in all)"), "{err}");
    assert!(err.len() < 600, "{} bytes of error", err.len());
    // A line of megabytes is not read to its end.
    let huge = dir.path().join("huge.txt");
    std::fs::write(&huge, format!("{header}{}", "a".repeat(3 << 20))).unwrap();
    let err = fails(&[huge.to_str().unwrap()]);
    assert!(err.contains("huge.txt:2: a line of over 1 MiB"), "{err}");
    assert!(err.len() < 600, "{} bytes of error", err.len());
}

#[test]
fn layout_flag_is_checked_against_the_header() {
    let input = fixture("pods.txt");
    let err = fails(&[input.as_str(), "--layout", "nodes"]);
    // Both layouts as --layout spells them.
    assert!(
        err.contains("the header is kubectl's pods layout but --layout says nodes"),
        "{err}"
    );
    let err = fails(&[&fixture("pods-all-namespaces.txt"), "--layout", "pods"]);
    assert!(
        err.contains("kubectl's pods-all-namespaces layout but --layout says pods"),
        "{err}"
    );
    let input = fixture("containers-all-namespaces-no-headers.txt");
    let err = fails(&[input.as_str()]);
    assert!(err.contains("pass --layout"), "{err}");
    let err = fails(&[input.as_str(), "--layout", "pods"]);
    assert!(err.contains("expected 3 columns"), "{err}");
}

#[test]
fn sum_footer_is_checked_not_emitted() {
    let input = fixture("pods-all-namespaces-sum.txt");
    let out = top_parse(&[input.as_str()], b"");
    assert!(out.status.success());
    assert!(!stdout(&out).contains("________"));
    assert_eq!(stdout(&out).lines().count(), 11);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    let input = fixture("bad/sum-mismatch.txt");
    let out = top_parse(&[input.as_str()], b"");
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("sum-mismatch.txt:5: the --sum footer (90m / 20Mi) does not match the 2 rows"),
        "{err}"
    );
}

#[test]
fn a_headerless_table_may_be_only_its_sum_footer() {
    // Found by fuzzing: the first line, read before the body, is the footer's separator, so
    // the body must not be read as rows; one and two threads alike.
    for threads in ["1", "2"] {
        let out = top_parse(
            &["--layout", "pods", "--threads", threads, "-"],
            b"____\n  10m  20Mi\n",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
        let out = top_parse(
            &["--layout", "pods", "--threads", threads, "-"],
            b"____\nweb-1 10m 20Mi\n",
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("<stdin>:2: expected the --sum totals (2 values)"),
            "{}",
            stderr(&out)
        );
    }
}

/// A `kubectl top … >> file` loop appends tables to one file: each header starts a table of
/// its own, with its own `--sum` check, and the rows are those of the tables read apart.
#[test]
fn tables_appended_to_one_file_are_read_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let summed =
        std::fs::read_to_string(root().join(fixture("pods-all-namespaces-sum.txt"))).unwrap();
    let appended = dir.path().join("appended.txt");
    std::fs::write(&appended, summed.repeat(3)).unwrap();
    let one = ok(&[&fixture("pods-all-namespaces-sum.txt")]);
    let three = ok(&[appended.to_str().unwrap()]);
    let rows = |t: &str| t.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(rows(&three), [rows(&one), rows(&one), rows(&one)].concat());

    // Large tables: the first is read in parallel, the rest in turn; the rows are the same.
    let big: String = std::iter::once("NAMESPACE NAME CPU(cores) MEMORY(bytes)\n".to_owned())
        .chain((0..30_000).map(|i| format!("ns-{} web-{i}   {}m   {}Mi\n", i % 5, i % 90, i % 700)))
        .collect();
    let appended = dir.path().join("big.txt");
    std::fs::write(&appended, big.repeat(2)).unwrap();
    let single = dir.path().join("single.txt");
    std::fs::write(&single, &big).unwrap();
    let (a, s) = (appended.to_str().unwrap(), single.to_str().unwrap());
    assert_eq!(ok(&["--threads", "2", a]), ok(&["--threads", "2", s, s]));
    assert_eq!(ok(&["--threads", "2", a]), ok(&["--threads", "1", a]));

    // The workers read on past an appended table's header, inside a chunk: the totals start
    // afresh there, so a footer is checked against its own table's rows only. 30,000 rows a
    // table, padded as kubectl pads them: the first table's would be far beyond the rounding.
    let table = |rows: std::ops::Range<u32>| {
        let mut text = "NAMESPACE   NAME              CPU(cores)   MEMORY(bytes)   \n".to_owned();
        let (mut cpu, mut memory) = (0, 0);
        for i in rows {
            let (c, m) = (i % 90, i % 700 + 1);
            text += &format!(
                "{:<12}{:<18}{:<13}{:<16}\n",
                format!("ns-{}", i % 5),
                format!("web-{i}"),
                format!("{c}m"),
                format!("{m}Mi")
            );
            (cpu, memory) = (cpu + c, memory + m);
        }
        (text, cpu, memory)
    };
    let footer = |cpu: u32, memory: u32| {
        format!(
            "{:30}________     ________\n{:30}{cpu}m{:8}{memory}Mi\n",
            "", "", ""
        )
    };
    let ((first, c1, m1), (second, c2, m2)) = (table(0..30_000), table(30_000..60_000));
    let own = dir.path().join("own-sum.txt");
    std::fs::write(&own, format!("{first}{second}{}", footer(c2, m2))).unwrap();
    let out = top_parse(&["--threads", "2", own.to_str().unwrap()], b"");
    assert!(
        out.status.success() && !stderr(&out).contains("--sum"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out).lines().count(), 1 + 60_000);
    let both = dir.path().join("both-sum.txt");
    std::fs::write(
        &both,
        format!("{first}{second}{}", footer(c1 + c2, m1 + m2)),
    )
    .unwrap();
    let err = stderr(&top_parse(&["--threads", "2", both.to_str().unwrap()], b""));
    assert!(
        err.contains("both-sum.txt:60004") && err.contains("--sum"),
        "{err}"
    );
    // With `--timestamp now` each table takes the time it is read: the workers hand over at
    // its header instead. (200,000 rows before it: milliseconds even in a release build.)
    let header = "NAMESPACE   NAME              CPU(cores)   MEMORY(bytes)   \n";
    let row = "ns-1        web-1             12m          100Mi           \n";
    let long = dir.path().join("long-then-short.txt");
    let text = [header, &row.repeat(200_000), header, &row.repeat(10)].concat();
    std::fs::write(&long, text).unwrap();
    let stamped = ok(&[
        "--threads",
        "2",
        "--timestamp",
        "now",
        long.to_str().unwrap(),
    ]);
    let stamps: Vec<&str> = stamped
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    let (a, b) = stamps.split_at(200_000);
    assert!(a.iter().all(|s| s == &a[0]) && b.iter().all(|s| s == &b[0]));
    assert!(
        a[0].parse::<jiff::Timestamp>().unwrap() < b[0].parse().unwrap(),
        "{} {}",
        a[0],
        b[0]
    );
}

/// `kubectl top pod -n NS` prints no NAMESPACE column: `--namespace` says which it was, so that
/// compare can tell the control plane's pods from the workload's.
#[test]
fn namespace_fills_tables_without_a_namespace_column() {
    let containers = fixture("containers.txt");
    let text = ok(&["-n", "linkerd", &containers]);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.starts_with(",,linkerd,")), "{text}");
    // The same through the general parser (JSON) and on several threads.
    let json = ok(&["-n", "linkerd", "-f", "ndjson", &containers]);
    assert!(
        json.lines()
            .all(|l| l.contains("\"namespace\":\"linkerd\"")),
        "{json}"
    );
    let many: String = std::iter::once("NAME CPU(cores) MEMORY(bytes)\n".to_owned())
        .chain((0..40_000).map(|i| format!("web-{i}   {}m   {}Mi\n", i % 90, i % 500)))
        .collect();
    let out = top_parse(&["-n", "web", "--threads", "2", "-"], many.as_bytes());
    assert!(out.status.success());
    assert_eq!(stdout(&out).matches(",,web,web-").count(), 40_000);

    // Tables and documents that name namespaces (or have none) refuse it.
    for (input, expected) in [
        (
            "pods-all-namespaces.txt",
            "this table has a NAMESPACE column",
        ),
        ("nodes.txt", "node rows have no namespace"),
        (
            "metrics-pods.json",
            "metrics API JSON names each pod's namespace",
        ),
    ] {
        let err = fails(&["-n", "linkerd", &fixture(input)]);
        assert!(err.contains(input) && err.contains(expected), "{err}");
    }
    let out = top_parse(&["-n", "Not_A_Namespace", &containers], b"");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn rows_are_the_same_whatever_the_thread_count() {
    // kubectl's own rows take a fast path; odd ones (tabs, quotes, other units) do not.
    let mut input = String::from("NAMESPACE   NAME        CPU(cores)   MEMORY(bytes)\n");
    for i in 0..30_000 {
        match i % 1000 {
            7 => input.push_str("default     \"q\",uote   1m           1Mi\n"),
            8 => input.push_str("default\tweb-tab     1m           1Mi\n"),
            9 => input.push_str("default     web-cores   1            2Gi\n"),
            _ => input.push_str(&format!(
                "ns-{}        web-{i}       {}m         {}Mi   \n",
                i % 7,
                i % 900,
                i % 5000
            )),
        }
    }
    let one = top_parse(&["--threads", "1", "-"], input.as_bytes());
    let two = top_parse(&["--threads", "2", "-"], input.as_bytes());
    let json = top_parse(&["-f", "ndjson", "-"], input.as_bytes());
    assert!(one.status.success() && two.status.success() && json.status.success());
    assert_eq!(stdout(&one), stdout(&two));
    assert_eq!(stdout(&one).lines().count(), 30_001);
    assert!(stdout(&one).contains(",default,\"\"\"q\"\",uote\",,1,1048576\n"));
    assert!(stdout(&one).contains(",default,web-cores,,1000,2147483648\n"));
    assert_eq!(stdout(&json).lines().count(), 30_000);
}

#[test]
fn mixed_kinds_are_refused() {
    let a = fixture("pods.txt");
    let b = fixture("nodes.txt");
    let err = fails(&[a.as_str(), b.as_str()]);
    assert!(
        err.contains("holds node metrics but earlier inputs hold pod metrics"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2_and_help_shows_the_pipeline() {
    let out = top_parse(&["--no-such-flag"], b"");
    assert_eq!(out.status.code(), Some(2));
    let out = top_parse(&["--timestamp", "yesterday"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("RFC 3339"));

    // Sampling flags without --from-cluster are refused, not ignored, and nothing is written.
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("rows.csv");
    let pods = fixture("pods.txt");
    for (args, named) in [
        (&["-A"][..], "-A/--all-namespaces only applies"),
        (&["--interval", "5s"][..], "--interval only applies"),
        (
            &["--containers", "--samples", "2"][..],
            "--containers, --samples only apply",
        ),
        (
            &["--kubeconfig", "k", "-l", "app=x"][..],
            "--kubeconfig, -l/--selector only apply",
        ),
    ] {
        let mut all = args.to_vec();
        all.extend(["-o", output.to_str().unwrap(), &pods]);
        let out = top_parse(&all, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains(named) && stderr(&out).contains("with --from-cluster"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(!output.exists());
    }

    let help = ok(&["--help"]);
    let examples = help.split("Examples:").nth(1).expect("an Examples block");
    assert!(examples.contains("kubectl top pods -A --containers | top-parse"));
    assert!(examples.contains("compare --arm"));
    assert!(
        help.trim_end()
            .ends_with("compare --arm linkerd=runs/linkerd --arm istio=runs/istio")
    );
}

#[test]
fn closed_stdout_is_not_an_error() {
    // `top-parse big.txt | head -1`: the pipe closes early; exit quietly with 0.
    let mut text = String::from("NAME CPU(cores) MEMORY(bytes)\n");
    for i in 0..200_000 {
        text.push_str(&format!("pod-{i} 1m 1Mi\n"));
    }
    let mut child = spawn(&[]);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(text.as_bytes());
    });
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

/// A `kubectl top pod -A` table of `rows` rows, several MiB: more than one chunk, so the
/// parallel path runs.
fn big_table(rows: usize, sum: bool) -> String {
    let mut text = String::from(
        "NAMESPACE     NAME                             CPU(cores)   MEMORY(bytes)   \n",
    );
    let (mut cpu, mut mem) = (0u64, 0u64);
    for i in 0..rows {
        let (c, m) = ((i * 7 % 900) as u64, (i * 13 % 4000 + 1) as u64);
        cpu += c;
        mem += m;
        text.push_str(&format!(
            "sample-app    nginx-{i:07}-5f7c8d9b6-abcde    {c}m         {m}Mi          \n"
        ));
    }
    if sum {
        text.push_str(
            "                                               ________     ________        \n",
        );
        text.push_str(&format!(
            "                                               {cpu}m   {mem}Mi     \n"
        ));
    }
    text
}

fn with_threads(threads: &str, input: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--threads", threads, input.to_str().unwrap()];
    args.extend_from_slice(extra);
    top_parse(&args, b"")
}

#[test]
fn parallel_output_is_the_same_as_sequential() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.txt");
    std::fs::write(&input, big_table(60_000, true)).unwrap();
    for format in ["csv", "ndjson", "json"] {
        let one = with_threads("1", &input, &["-f", format, "--run", "r"]);
        let two = with_threads("2", &input, &["-f", format, "--run", "r"]);
        let three = with_threads("3", &input, &["-f", format, "--run", "r"]);
        assert!(one.status.success(), "{}", stderr(&one));
        assert_eq!(stdout(&one), stdout(&two), "{format}");
        assert_eq!(stdout(&one), stdout(&three), "{format}");
        assert!(
            stderr(&two).is_empty(),
            "the --sum footer matches: {}",
            stderr(&two)
        );
    }
    assert_eq!(
        stdout(&with_threads("2", &input, &[])).lines().count(),
        60_001
    );
}

#[test]
fn parallel_reading_stops_at_a_footer_in_a_later_chunk() {
    // Two multi-chunk tables with footers, one after the other: the workers have read chunks
    // of the second table ahead when the first's footer turns up in the middle of a chunk;
    // those chunks, and the rest, are read in order, and each table's --sum is checked.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("two.txt");
    let table = big_table(60_000, true);
    // A third table without a footer, after a blank line: the header alone stops the chunks.
    let unsummed = big_table(60_000, false);
    std::fs::write(&input, table.repeat(2) + "\n" + &unsummed).unwrap();
    let single = dir.path().join("one.txt");
    std::fs::write(&single, &table).unwrap();
    let one = with_threads("1", &input, &[]);
    assert!(one.status.success(), "{}", stderr(&one));
    assert!(stderr(&one).is_empty(), "{}", stderr(&one));
    for threads in ["2", "3"] {
        let out = with_threads(threads, &input, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{threads}: {}", stderr(&out));
        assert_eq!(stdout(&out), stdout(&one), "{threads}");
    }
    let rows = stdout(&one).lines().count();
    assert_eq!(rows, 1 + 3 * 60_000);
    // The same rows as the three tables read as three files.
    let (t, u) = (dir.path().join("t.txt"), dir.path().join("u.txt"));
    std::fs::write(&t, &table).unwrap();
    std::fs::write(&u, &unsummed).unwrap();
    let (t, u) = (t.to_str().unwrap(), u.to_str().unwrap());
    assert_eq!(stdout(&top_parse(&[t, t, u], b"")), stdout(&one));
    // A bad line in the third table is found at its own line, on every path.
    let bad = table.repeat(2) + "\n" + &unsummed.replacen("5f7c8d9b6-abcde", "5f7c8d9b6 abcde", 1);
    std::fs::write(&input, bad).unwrap();
    for threads in ["1", "2"] {
        let err = stderr(&with_threads(threads, &input, &[]));
        assert!(
            err.contains(&format!("two.txt:{}: expected 4 columns", 2 * 60_003 + 3)),
            "{threads}: {err}"
        );
    }
    // A wrong total in the second table is found at its own line.
    let wrong = table.clone()
        + &table.replacen(
            "________        \n                                               ",
            "________        \n                                               1",
            1,
        );
    std::fs::write(&input, wrong).unwrap();
    for threads in ["1", "2"] {
        let err = stderr(&with_threads(threads, &input, &[]));
        assert!(
            err.contains(&format!("two.txt:{}: the --sum footer", 2 * 60_003)),
            "{threads}: {err}"
        );
    }
}

#[test]
fn parallel_errors_name_the_right_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.txt");
    let mut text = big_table(60_000, false);
    // A bad line deep in a later chunk, and a second one after it.
    let at = text.match_indices('\n').nth(45_000).unwrap().0 + 1;
    text.insert_str(at, "sample-app  broken-pod  12m\n");
    let at = text.match_indices('\n').nth(50_000).unwrap().0 + 1;
    text.insert_str(at, "sample-app  other-broken-pod  12m\n");
    std::fs::write(&input, &text).unwrap();
    for threads in ["1", "2"] {
        let out = with_threads(threads, &input, &[]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("bad.txt:45002: expected 4 columns"),
            "{threads}: {err}"
        );

        let out = with_threads(threads, &input, &["--skip-bad-lines"]);
        assert!(out.status.success());
        assert_eq!(stdout(&out).lines().count(), 60_001);
        let err = stderr(&out);
        assert!(err.contains("bad.txt:45002: skipped"), "{err}");
        assert!(err.contains("bad.txt:50002: skipped"), "{err}");
        assert!(err.contains("skipped 2 bad lines"), "{err}");
    }
}

#[test]
fn parallel_sum_mismatch_and_trailing_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sum.txt");
    let mut text = big_table(60_000, true);
    text = text.replacen(
        "________     ________        \n                                               ",
        "________     ________        \n                                               1",
        1,
    );
    std::fs::write(&input, &text).unwrap();
    for threads in ["1", "2"] {
        let out = with_threads(threads, &input, &[]);
        assert!(out.status.success());
        assert!(
            stderr(&out).contains("sum.txt:60003: the --sum footer"),
            "{}",
            stderr(&out)
        );
    }
    text.push_str("sample-app   late-pod   1m   1Mi\n");
    std::fs::write(&input, &text).unwrap();
    for threads in ["1", "2"] {
        let err = stderr(&with_threads(threads, &input, &[]));
        assert!(
            err.contains(
                "sum.txt:60004: a line after the --sum totals that is not a new table's header"
            ),
            "{err}"
        );
    }
}

/// Runs top-parse on a pipe fed part by part, the pipe left open between parts as a loop
/// sampling `kubectl top` leaves it. After part `k`, waits (20 s at most) until the output has
/// `lines[k]` lines: so the rows of a part must come out while top-parse is still waiting for
/// the next. Returns stdout, stderr and success.
fn fed_in_parts(args: &[&str], parts: &[String], lines: &[usize]) -> (String, String, bool) {
    use std::io::Read as _;
    use std::sync::mpsc;
    let mut child = spawn(args);
    let mut stdin = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut output = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        // Written from another thread: a large part fills the pipes both ways.
        let writer = {
            let mut pipe = stdin.try_clone_pipe();
            let part = part.clone();
            std::thread::spawn(move || pipe.write_all(part.as_bytes()))
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while output.iter().filter(|&&b| b == b'\n').count() < lines[k] {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => output.extend_from_slice(&bytes),
                Err(_) => panic!(
                    "part {} of {}: its rows did not come out while the pipe was open; \
                     output so far:\n{}",
                    k + 1,
                    parts.len(),
                    String::from_utf8_lossy(&output)
                ),
            }
        }
        writer.join().unwrap().unwrap();
    }
    stdin.flush().unwrap();
    drop(stdin);
    let err = all_stderr(&mut child);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    output.extend(rx.try_iter().flatten());
    (String::from_utf8(output).unwrap(), err, status.success())
}

/// `ChildStdin` cannot be cloned; its file descriptor can.
trait ClonePipe {
    fn try_clone_pipe(&self) -> std::fs::File;
}

impl ClonePipe for std::process::ChildStdin {
    fn try_clone_pipe(&self) -> std::fs::File {
        use std::os::fd::AsFd as _;
        std::fs::File::from(self.as_fd().try_clone_to_owned().unwrap())
    }
}

#[test]
fn a_pipe_fed_table_by_table_gets_its_rows_table_by_table() {
    // `while true; do kubectl top pod -A; sleep 15; done | top-parse -`: each table's rows come
    // out before the next table is sent, in every format, and in the end they are the rows of
    // the whole input read at once.
    let table = std::fs::read_to_string(root().join(fixture("pods-all-namespaces.txt"))).unwrap();
    let parts = vec![table.clone(); 3];
    let rows = table.lines().count() - 1;
    for format in ["csv", "ndjson", "json"] {
        // Newlines out: CSV's header line and each row's; each NDJSON row's; JSON's header line
        // and each row's but the last, whose line ends with the next row (or the closing `]}`).
        let header = usize::from(format == "csv");
        let lines: Vec<usize> = (1..=parts.len()).map(|k| header + k * rows).collect();
        for threads in ["1", "2"] {
            let args = ["--run", "loop", "-f", format, "--threads", threads, "-"];
            let (out, err, ok) = fed_in_parts(&args, &parts, &lines);
            assert!(ok, "{format}, {threads} threads: {err}");
            let whole = top_parse(&args, parts.concat().as_bytes());
            assert_eq!(out, stdout(&whole), "{format}, {threads} threads");
        }
    }
}

#[test]
fn a_pipe_that_pauses_after_a_large_table_hands_it_on_and_numbers_lines_on() {
    // A first table of several chunks (read by the workers), a pause, then tables a loop sends:
    // the large table's rows come out during the pause, the workers stop, and the rest is read
    // on one thread with the line numbers running on (a bad line in the third part names its
    // line in the whole input).
    let big = big_table(30_000, false);
    let table = std::fs::read_to_string(root().join(fixture("pods-all-namespaces.txt"))).unwrap();
    let bad = table.replacen("41m", "41 m", 1);
    let parts = vec![big.clone(), table.clone(), bad.clone()];
    let bad_line = big.lines().count()
        + table.lines().count()
        + bad.lines().position(|l| l.contains("41 m")).unwrap()
        + 1;
    let args = ["--skip-bad-lines", "-"];
    let rows = table.lines().count() - 1;
    let lines = [30_001, 30_001 + rows, 30_001 + 2 * rows - 1];
    let (out, err, ok) = fed_in_parts(&args, &parts, &lines);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), lines[2]);
    assert!(
        err.contains(&format!("<stdin>:{bad_line}: skipped")),
        "line {bad_line}: {err}"
    );
    let whole = top_parse(&args, parts.concat().as_bytes());
    assert_eq!(out, stdout(&whole));
    assert_eq!(err, stderr(&whole));
}

/// Sends `signal`: SIGINT as Ctrl-C at a terminal does, SIGTERM as `kill` or a stopping pod does.
fn send(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, signal).unwrap();
}

/// Everything `child` writes to its stderr, until it closes it.
fn all_stderr(child: &mut std::process::Child) -> String {
    use std::io::Read as _;
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// Sends `signal` to `child` and waits for it: its exit status and its stderr.
fn signalled(
    mut child: std::process::Child,
    signal: nix::sys::signal::Signal,
) -> (std::process::ExitStatus, String) {
    send(&child, signal);
    let status = child.wait().unwrap();
    let err = all_stderr(&mut child);
    (status, err)
}

/// The temporary files `-o` writes into in `dir` (named `.NAME.XXXXXX.tmp`).
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tmp"))
        .collect()
}

/// Waits (10 s at most) until `ready` says yes.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited 10 s for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn ctrl_c_or_sigterm_on_a_silent_pipe_writes_the_rows_read_and_exits_128_plus_the_signal() {
    use nix::sys::signal::Signal;
    for (signal, code, said) in [
        (Signal::SIGINT, 130, "interrupted (Ctrl-C)"),
        (Signal::SIGTERM, 143, "terminated (SIGTERM)"),
    ] {
        interrupted_on_a_silent_pipe(signal, code, said);
    }
}

fn interrupted_on_a_silent_pipe(signal: nix::sys::signal::Signal, code: i32, said: &str) {
    // A sampling loop has sent a table and the start of a line, and is still running: the
    // signal to top-parse alone ends its input there. The output file holds the table's rows
    // (not the cut line), no temporary file is left, and the exit code names the signal.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pods.csv");
    let mut child = spawn(&["--run", "loop", "-o", out.to_str().unwrap(), "-"]);
    let table = std::fs::read_to_string(root().join(fixture("pods-all-namespaces.txt"))).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(table.as_bytes()).unwrap();
    stdin.write_all(b"kube-system   coredns-7db6").unwrap();
    stdin.flush().unwrap();
    // The rows go to the temporary file before top-parse waits for more.
    wait_for("the table's rows in the temporary file", || {
        temporaries(dir.path())
            .iter()
            .any(|t| std::fs::metadata(t).is_ok_and(|m| m.len() > 0))
    });
    let (status, err) = signalled(child, signal);
    assert_eq!(status.code(), Some(code), "{err}");
    assert!(
        err.contains(&format!(
            "{said} while reading <stdin>; the rows read before it were written"
        )),
        "{err}"
    );
    let whole = top_parse(&["--run", "loop", "-"], table.as_bytes());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), stdout(&whole));
    assert!(temporaries(dir.path()).is_empty());
    drop(stdin);
}

#[test]
fn ctrl_c_before_any_input_writes_nothing_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pods.csv");
    let child = spawn(&["-o", out.to_str().unwrap(), "-"]);
    // Ctrl-C is caught before the temporary file is made.
    wait_for("the temporary file", || !temporaries(dir.path()).is_empty());
    let (status, err) = signalled(child, nix::sys::signal::Signal::SIGINT);
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!out.exists());
    assert!(temporaries(dir.path()).is_empty());
}

#[test]
fn timestamp_now_stamps_each_table_when_it_is_read() {
    // A loop piped in: with `--timestamp now` each sample's rows carry the time it came, not
    // the time top-parse started. (A table is read at least 20 ms after the one before it here:
    // fed_in_parts sends it only once the earlier rows are out.)
    let table = std::fs::read_to_string(root().join(fixture("pods-all-namespaces.txt"))).unwrap();
    let rows = table.lines().count() - 1;
    let parts = vec![table.clone(); 3];
    let lines: Vec<usize> = (1..=3).map(|k| 1 + k * rows).collect();
    let (out, err, success) = fed_in_parts(&["--timestamp", "now", "-"], &parts, &lines);
    assert!(success, "{err}");
    let stamps: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    let tables: Vec<&[&str]> = stamps.chunks(rows).collect();
    for t in &tables {
        assert!(t.iter().all(|s| s == &t[0]), "one time per table: {t:?}");
    }
    let times: Vec<jiff::Timestamp> = tables.iter().map(|t| t[0].parse().unwrap()).collect();
    assert!(times[0] < times[1] && times[1] < times[2], "{times:?}");
    // A given time is every row's.
    let fixed = ok(&[
        "--timestamp",
        "2026-11-26T08:00:00Z",
        &fixture("pods-all-namespaces.txt"),
    ]);
    assert!(
        fixed
            .lines()
            .skip(1)
            .all(|l| l.contains(",2026-11-26T08:00:00Z,"))
    );
}
