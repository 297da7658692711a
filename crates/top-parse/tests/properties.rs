//! Properties of the parser: it never panics, whatever the bytes, and any table kubectl could
//! print (with any padding) reads back as the values it was printed from.

use std::io::Cursor;

use meshbench_formats::usage::Cpu;
use proptest::prelude::*;
use top_parse::{Layout, ParseOptions, Row, parse_input};

fn parse_all(bytes: &[u8], layout: Option<Layout>, skip: bool) -> Result<Vec<String>, String> {
    let opts = ParseOptions {
        layout,
        skip_bad_lines: skip,
        ..ParseOptions::default()
    };
    let mut rows = Vec::new();
    parse_input("prop", Cursor::new(bytes), &opts, &mut |row: Row<'_>| {
        rows.push(format!("{row:?}"));
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(rows)
}

const LAYOUTS: [Option<Layout>; 6] = [
    None,
    Some(Layout::Pods),
    Some(Layout::PodsAllNamespaces),
    Some(Layout::Containers),
    Some(Layout::ContainersAllNamespaces),
    Some(Layout::Nodes),
];

/// Text that looks like kubectl output, mutated: the interesting inputs for a parser.
fn table_like() -> impl Strategy<Value = String> {
    let header = prop::sample::select(vec![
        "NAME CPU(cores) MEMORY(bytes)",
        "NAMESPACE NAME CPU(cores) MEMORY(bytes)",
        "NAMESPACE POD NAME CPU(cores) MEMORY(bytes)",
        "NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)",
        "NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%",
        "",
    ]);
    let cell = prop::sample::select(vec![
        "a",
        "ns",
        "12m",
        "3Mi",
        "1.5Gi",
        "<unknown>",
        "12%",
        "________",
        "-1m",
        "1e40",
        "0",
        "{",
        "NAME",
        "\t",
        "é",
        "9Ei",
        ".",
        "1e2147483647",
    ]);
    let line = prop::collection::vec(cell, 0..7).prop_map(|cells| cells.join("  "));
    (header, prop::collection::vec(line, 0..8))
        .prop_map(|(h, lines)| format!("{h}\n{}\n", lines.join("\n")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), which in 0usize..6, skip: bool) {
        let _ = parse_all(&bytes, LAYOUTS[which], skip);
    }

    #[test]
    fn never_panics_on_table_like_text(text in table_like(), which in 0usize..6, skip: bool) {
        let _ = parse_all(text.as_bytes(), LAYOUTS[which], skip);
    }

    /// Pods printed the way kubectl prints them (values in m and Mi, any padding, trailing
    /// spaces or not, a --sum footer or not) read back exactly.
    #[test]
    fn printed_tables_read_back(
        pods in prop::collection::vec(("[a-z][a-z0-9-]{0,20}", "[a-z][a-z0-9-]{0,12}", 0u32..100_000, 0u32..1_000_000), 1..40),
        pads in prop::collection::vec(1usize..6, 4),
        trailing: bool,
        with_sum: bool,
    ) {
        let pad = |i: usize| " ".repeat(pads[i % pads.len()]);
        let end = if trailing { "   " } else { "" };
        let mut text = format!("NAMESPACE{}NAME{}CPU(cores){}MEMORY(bytes){end}\n", pad(0), pad(1), pad(2));
        for (pod, ns, cpu, mem) in &pods {
            text.push_str(&format!("{ns}{}{pod}{}{cpu}m{}{mem}Mi{end}\n", pad(0), pad(1), pad(2)));
        }
        if with_sum {
            let cpu: u64 = pods.iter().map(|p| u64::from(p.2)).sum();
            let mem: u64 = pods.iter().map(|p| u64::from(p.3)).sum();
            text.push_str(&format!("   ________   ________{end}\n   {cpu}m   {mem}Mi{end}\n"));
        }
        let opts = ParseOptions::default();
        let mut got = Vec::new();
        parse_input("prop", Cursor::new(text.as_bytes()), &opts, &mut |row: Row<'_>| {
            let Row::Pod(p) = row else { panic!("node row from a pod table") };
            got.push((p.pod.to_owned(), p.namespace.unwrap().to_owned(), p.cpu_millicores, p.memory_bytes));
            Ok(())
        }).unwrap();
        let want: Vec<_> = pods.iter().map(|(pod, ns, cpu, mem)| {
            (pod.clone(), ns.clone(), Cpu::from_millicores(i64::from(*cpu)), u64::from(*mem) << 20)
        }).collect();
        prop_assert_eq!(got, want);
    }
}
