//! `--fail-if` conditions: parsed with the arguments, so a typo fails before any file is read,
//! and checked against the finished table.
//!
//! `METRIC OP NUMBER` holds when any arm's value does; `ARM.METRIC OP NUMBER` on one arm;
//! `delta.METRIC OP NUMBER` on the delta to the baseline, in percent. OP is one of `>`, `>=`,
//! `<`, `<=`, with or without spaces around it.

use std::fmt;
use std::str::FromStr;

use meshbench_formats::comparison::{Comparison, METRICS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
            Op::Lt => value < limit,
            Op::Le => value <= limit,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// Whose value a condition is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every arm that has the metric.
    Every,
    Arm(String),
    /// The delta to the baseline, in percent.
    Delta,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub scope: Scope,
    pub metric: &'static str,
    pub op: Op,
    pub limit: f64,
}

const EXPECTED: &str = "expected 'METRIC OP NUMBER', 'ARM.METRIC OP NUMBER' or \
                        'delta.METRIC OP NUMBER' with OP one of > >= < <=";

impl FromStr for Condition {
    type Err = String;

    fn from_str(text: &str) -> Result<Condition, String> {
        let usage = || format!("{text:?}: {EXPECTED}");
        let at = text.find(['<', '>']).ok_or_else(usage)?;
        let (target, rest) = (text[..at].trim(), &text[at..]);
        let (op, number) = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)]
            .into_iter()
            .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|n| (op, n.trim())))
            .ok_or_else(usage)?;
        let limit: f64 = number.parse().map_err(|_| usage())?;
        if !limit.is_finite() {
            return Err(format!("{text:?}: the limit must be a finite number"));
        }
        if target.is_empty() || target.contains(char::is_whitespace) {
            return Err(usage());
        }
        // Metric names have no dots; an arm's name may.
        let (scope, metric) = match target.rsplit_once('.') {
            None => (Scope::Every, target),
            Some(("delta", metric)) => (Scope::Delta, metric),
            Some((arm, metric)) if !arm.is_empty() => (Scope::Arm(arm.to_owned()), metric),
            Some(_) => return Err(usage()),
        };
        let metric = METRICS
            .iter()
            .find(|(m, _)| *m == metric)
            .map(|(m, _)| *m)
            .ok_or_else(|| {
                format!(
                    "{text:?}: unknown metric {metric:?}; known: {}",
                    METRICS.map(|(m, _)| m).join(", ")
                )
            })?;
        Ok(Condition {
            scope,
            metric,
            op,
            limit,
        })
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Scope::Every => {}
            Scope::Arm(arm) => write!(f, "{arm}.")?,
            Scope::Delta => f.write_str("delta.")?,
        }
        write!(f, "{} {} {}", self.metric, self.op.symbol(), self.limit)
    }
}

/// What checking a condition found.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Holds(String),
    DoesNotHold,
    /// There is no value to check (a missing file, a delta with no baseline value): a gate that
    /// cannot be checked must not pass.
    Unchecked(String),
}

impl Condition {
    /// Checks the condition on the table. With `Scope::Every`, arms without the metric are left
    /// out (the `none` arm has no control plane), and named in `skipped`.
    pub fn check(&self, table: &Comparison, skipped: &mut Vec<String>) -> Verdict {
        let Some(row) = table.rows.iter().find(|r| r.metric == self.metric) else {
            return Verdict::Unchecked(format!("{self}: the table has no {} row", self.metric));
        };
        let values: Vec<(String, Option<f64>)> = match &self.scope {
            // Each arm's delta to the reference (v1 tables: the one `delta_pct`).
            Scope::Delta if row.deltas.is_empty() => vec![("the delta".to_owned(), row.delta_pct)],
            Scope::Delta => row
                .deltas
                .iter()
                .map(|(arm, d)| (format!("{arm}'s delta"), d.delta_pct))
                .collect(),
            Scope::Arm(arm) => vec![(arm.clone(), row.values.get(arm).copied().flatten())],
            Scope::Every => table
                .arms
                .iter()
                .map(|a| (a.clone(), row.values.get(a).copied().flatten()))
                .collect(),
        };
        let missing: Vec<&str> = values
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(who, _)| who.as_str())
            .collect();
        if missing.len() == values.len() {
            let why = match (&self.scope, values.len()) {
                (Scope::Every, _) => "no arm has a value".to_owned(),
                (Scope::Delta, n) if n > 1 => "no arm has a delta".to_owned(),
                _ => format!("{} has no value", missing[0]),
            };
            return Verdict::Unchecked(format!("{self}: cannot be checked, {why}"));
        }
        skipped.extend(
            missing
                .iter()
                .map(|who| format!("{self}: {who} has no value")),
        );
        values
            .iter()
            .find_map(|(who, v)| {
                v.filter(|&v| self.op.holds(v, self.limit))
                    .map(|v| Verdict::Holds(format!("{self}: {who} has {v}")))
            })
            .unwrap_or(Verdict::DoesNotHold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn conditions_read_with_or_without_spaces() {
        let c: Condition = "latency_p99_ms>150".parse().unwrap();
        assert_eq!(
            c,
            Condition {
                scope: Scope::Every,
                metric: "latency_p99_ms",
                op: Op::Gt,
                limit: 150.0
            }
        );
        let c: Condition = " linkerd.v2.install_s <=  -1.5e1 ".parse().unwrap();
        assert_eq!(c.scope, Scope::Arm("linkerd.v2".to_owned()));
        assert_eq!((c.op, c.limit), (Op::Le, -15.0));
        let c: Condition = "delta.error_rate >= 0".parse().unwrap();
        assert_eq!((c.scope, c.op), (Scope::Delta, Op::Ge));
        for bad in [
            "",
            "p99",
            "latency_p99_ms >> 1",
            "latency_p99_ms => 1",
            "latency_p99_ms > ",
            "latency_p99_ms > NaN",
            "latency_p99_ms > inf",
            "> 1",
            ".latency_p99_ms > 1",
            "a b.latency_p99_ms > 1",
            "nosuch > 1",
        ] {
            assert!(bad.parse::<Condition>().is_err(), "{bad:?}");
        }
        let e = "nosuch > 1".parse::<Condition>().unwrap_err();
        assert!(e.contains("unknown metric \"nosuch\"") && e.contains("latency_p99_ms"));
    }

    fn table(values: &[(&str, Option<f64>)], delta: Option<f64>) -> Comparison {
        serde_json::from_value(serde_json::json!({
            "schema": "meshbench/comparison/v1.1",
            "arms": values.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            "rows": [{
                "metric": "control_plane_cpu_millicores",
                "unit": "millicores",
                "values": values.iter().copied().collect::<std::collections::BTreeMap<_, _>>(),
                "delta_pct": delta,
                "ci95": null,
                "significant": null,
                "deltas": {values[1].0: {"delta_pct": delta, "ci95": null, "significant": null}},
            }],
        }))
        .unwrap()
    }

    #[test]
    fn every_arm_that_has_the_value_is_checked_and_a_missing_value_is_never_a_pass() {
        let t = table(&[("none", None), ("linkerd", Some(120.0))], Some(12.5));
        let check = |text: &str| {
            let mut skipped = Vec::new();
            let verdict = text.parse::<Condition>().unwrap().check(&t, &mut skipped);
            (verdict, skipped)
        };
        let (v, skipped) = check("control_plane_cpu_millicores > 100");
        assert_eq!(
            v,
            Verdict::Holds("control_plane_cpu_millicores > 100: linkerd has 120".to_owned())
        );
        assert_eq!(
            skipped,
            ["control_plane_cpu_millicores > 100: none has no value"]
        );
        assert_eq!(
            check("control_plane_cpu_millicores > 200").0,
            Verdict::DoesNotHold
        );
        assert!(matches!(
            check("none.control_plane_cpu_millicores > 1").0,
            Verdict::Unchecked(m) if m.contains("none has no value")
        ));
        assert!(matches!(
            check("delta.control_plane_cpu_millicores > 10").0,
            Verdict::Holds(_)
        ));
        assert!(matches!(
            check("ghost.control_plane_cpu_millicores > 1").0,
            Verdict::Unchecked(_)
        ));
        let nothing = table(&[("a", None), ("b", None)], None);
        let mut skipped = Vec::new();
        let c: Condition = "delta.control_plane_cpu_millicores < 0".parse().unwrap();
        assert!(matches!(
            c.check(&nothing, &mut skipped),
            Verdict::Unchecked(_)
        ));
        let c: Condition = "control_plane_cpu_millicores < 0".parse().unwrap();
        assert_eq!(
            c.check(&nothing, &mut skipped),
            Verdict::Unchecked(
                "control_plane_cpu_millicores < 0: cannot be checked, no arm has a value"
                    .to_owned()
            )
        );
        assert!(skipped.is_empty());
    }

    #[test]
    fn a_delta_condition_is_checked_on_every_arm_against_the_reference() {
        let mut t = table(
            &[
                ("istio", Some(280.0)),
                ("linkerd", Some(120.0)),
                ("kuma", Some(300.0)),
            ],
            Some(-57.0),
        );
        t.rows[0].deltas.insert(
            "kuma".to_owned(),
            meshbench_formats::comparison::Delta {
                delta_pct: Some(7.0),
                ci95: None,
                significant: None,
            },
        );
        let check = |text: &str| {
            text.parse::<Condition>()
                .unwrap()
                .check(&t, &mut Vec::new())
        };
        assert_eq!(
            check("delta.control_plane_cpu_millicores > 5"),
            Verdict::Holds("delta.control_plane_cpu_millicores > 5: kuma's delta has 7".to_owned())
        );
        assert_eq!(
            check("delta.control_plane_cpu_millicores > 10"),
            Verdict::DoesNotHold
        );
        assert!(matches!(
            check("delta.control_plane_cpu_millicores < -50"),
            Verdict::Holds(m) if m.contains("linkerd's delta has -57")
        ));
    }

    fn condition() -> impl Strategy<Value = Condition> {
        let scope = prop_oneof![
            Just(Scope::Every),
            Just(Scope::Delta),
            "[a-z][a-z0-9.-]{0,12}"
                .prop_filter("not the delta", |a| a != "delta")
                .prop_map(Scope::Arm),
        ];
        let op = prop_oneof![Just(Op::Gt), Just(Op::Ge), Just(Op::Lt), Just(Op::Le)];
        (
            scope,
            0..METRICS.len(),
            op,
            proptest::num::f64::NORMAL | proptest::num::f64::ZERO,
        )
            .prop_map(|(scope, m, op, limit)| Condition {
                scope,
                metric: METRICS[m].0,
                op,
                limit,
            })
    }

    proptest! {
        #[test]
        fn a_printed_condition_reads_back(c in condition()) {
            prop_assert_eq!(c.to_string().parse::<Condition>(), Ok(c));
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,40}") {
            let _ = text.parse::<Condition>();
        }
    }
}
