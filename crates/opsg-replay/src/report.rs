//! Results: per-case pass/fail per expectation, the CSV, the summary with a confusion matrix of
//! classes and the false-incident rate on healthy windows, and a diff for each failed case.

use crate::case::Case;
use crate::pipeline::Actual;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One expectation's check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `class`, `first_action`, `decision` or `outcome`.
    pub what: &'static str,
    /// What the case file expects.
    pub expected: String,
    /// What the stages concluded.
    pub actual: String,
}

impl Check {
    /// True when they agree.
    pub fn passed(&self) -> bool {
        self.expected == self.actual
    }
}

/// A case's result.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The case's name.
    pub case: String,
    /// What the stages concluded (absent when the case could not run).
    pub actual: Option<ActualRow>,
    /// The checks its expectations asked for.
    pub checks: Vec<Check>,
    /// Why the case could not run.
    pub error: Option<String>,
}

/// [`Actual`], serializable.
#[derive(Debug, Clone, Serialize)]
pub struct ActualRow {
    /// Class.
    pub class: String,
    /// Confidence of the leading hypothesis.
    pub confidence: f64,
    /// First action.
    pub first_action: String,
    /// Gate verdict.
    pub decision: String,
    /// Implied outcome.
    pub outcome: String,
}

impl CaseResult {
    /// Compare what ran against what the case expects.
    pub fn new(case: &Case, actual: Result<Actual, String>) -> CaseResult {
        match actual {
            Err(error) => CaseResult {
                case: case.name.clone(),
                actual: None,
                checks: Vec::new(),
                error: Some(error),
            },
            Ok(actual) => {
                let f = &case.file;
                let mut checks = Vec::new();
                let mut check = |what, expected: &Option<String>, actual: &str| {
                    if let Some(expected) = expected {
                        checks.push(Check {
                            what,
                            expected: expected.clone(),
                            actual: actual.to_string(),
                        });
                    }
                };
                check("class", &f.expected_class, &actual.class);
                check("first_action", &f.expected_first_action, &actual.first_action);
                check("decision", &f.expected_decision, &actual.decision);
                check("outcome", &f.expected_outcome, &actual.outcome);
                CaseResult {
                    case: case.name.clone(),
                    actual: Some(ActualRow {
                        class: actual.class,
                        confidence: actual.confidence,
                        first_action: actual.first_action,
                        decision: actual.decision,
                        outcome: actual.outcome,
                    }),
                    checks,
                    error: None,
                }
            }
        }
    }

    /// True when it ran and every expectation held.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(Check::passed)
    }

    fn expected(&self, what: &str) -> Option<&str> {
        self.checks.iter().find(|c| c.what == what).map(|c| c.expected.as_str())
    }

    /// A readable diff of expected vs actual for a failed case.
    pub fn diff(&self) -> String {
        let mut out = format!("--- {} (expected)\n+++ {} (actual)\n", self.case, self.case);
        if let Some(error) = &self.error {
            out.push_str(&format!("! could not run: {error}\n"));
        }
        for c in &self.checks {
            if c.passed() {
                out.push_str(&format!("  {}: {}\n", c.what, c.expected));
            } else {
                out.push_str(&format!(
                    "- {}: {}\n+ {}: {}\n",
                    c.what, c.expected, c.what, c.actual
                ));
            }
        }
        out
    }
}

/// Write the per-case CSV.
pub fn write_csv<W: std::io::Write>(results: &[CaseResult], out: W) -> csv::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "case",
        "passed",
        "expected_class",
        "actual_class",
        "confidence",
        "expected_first_action",
        "actual_first_action",
        "expected_decision",
        "actual_decision",
        "expected_outcome",
        "actual_outcome",
        "error",
    ])?;
    for r in results {
        let a = r.actual.as_ref();
        let confidence = a.map(|a| format!("{:.3}", a.confidence)).unwrap_or_default();
        w.write_record([
            r.case.as_str(),
            if r.passed() { "true" } else { "false" },
            r.expected("class").unwrap_or(""),
            a.map_or("", |a| a.class.as_str()),
            confidence.as_str(),
            r.expected("first_action").unwrap_or(""),
            a.map_or("", |a| a.first_action.as_str()),
            r.expected("decision").unwrap_or(""),
            a.map_or("", |a| a.decision.as_str()),
            r.expected("outcome").unwrap_or(""),
            a.map_or("", |a| a.outcome.as_str()),
            r.error.as_deref().unwrap_or(""),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// The summary over all cases.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Cases run.
    pub cases: usize,
    /// Cases that met every expectation.
    pub passed: usize,
    /// Cases that did not (or could not run).
    pub failed: usize,
    /// Per expectation: (passed, checked).
    pub expectations: BTreeMap<String, (usize, usize)>,
    /// Confusion matrix: expected class -> actual class -> count.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    /// Per class: precision and recall (over cases with an expected class).
    pub per_class: BTreeMap<String, ClassScore>,
    /// Healthy windows (expected class `none`) and how many raised an incident anyway.
    pub healthy_windows: usize,
    /// False incidents on healthy windows.
    pub false_incidents: usize,
}

/// Precision and recall of one class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassScore {
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// False negatives.
    pub r#fn: usize,
    /// tp / (tp + fp), 1 when nothing was predicted.
    pub precision: f64,
    /// tp / (tp + fn), 1 when nothing was expected.
    pub recall: f64,
}

/// Summarize results.
pub fn summarize(results: &[CaseResult]) -> Summary {
    let mut expectations: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let (mut healthy, mut false_incidents) = (0, 0);
    for r in results {
        for c in &r.checks {
            let e = expectations.entry(c.what.to_string()).or_default();
            e.1 += 1;
            if c.passed() {
                e.0 += 1;
            }
        }
        if let (Some(expected), Some(actual)) = (r.expected("class"), r.actual.as_ref()) {
            *confusion
                .entry(expected.to_string())
                .or_default()
                .entry(actual.class.clone())
                .or_default() += 1;
            if expected == "none" {
                healthy += 1;
                if actual.class != "none" {
                    false_incidents += 1;
                }
            }
        }
    }
    let classes: BTreeSet<String> = confusion
        .iter()
        .flat_map(|(e, row)| std::iter::once(e.clone()).chain(row.keys().cloned()))
        .filter(|c| c != "none")
        .collect();
    let mut per_class = BTreeMap::new();
    for class in classes {
        let tp = confusion.get(&class).and_then(|r| r.get(&class)).copied().unwrap_or(0);
        let expected_total: usize = confusion.get(&class).map_or(0, |r| r.values().sum());
        let predicted_total: usize = confusion.values().filter_map(|r| r.get(&class)).sum();
        let (fp, fneg) = (predicted_total - tp, expected_total - tp);
        let ratio = |n: usize, d: usize| if d == 0 { 1.0 } else { n as f64 / d as f64 };
        per_class.insert(
            class,
            ClassScore {
                tp,
                fp,
                r#fn: fneg,
                precision: ratio(tp, tp + fp),
                recall: ratio(tp, tp + fneg),
            },
        );
    }
    let passed = results.iter().filter(|r| r.passed()).count();
    Summary {
        cases: results.len(),
        passed,
        failed: results.len() - passed,
        expectations,
        confusion,
        per_class,
        healthy_windows: healthy,
        false_incidents,
    }
}

/// The summary as a table for people.
pub fn render(summary: &Summary) -> String {
    let mut out = format!(
        "{} case(s): {} passed, {} failed\n",
        summary.cases, summary.passed, summary.failed
    );
    for (what, (ok, n)) in &summary.expectations {
        out.push_str(&format!("  {what:<13} {ok}/{n}\n"));
    }
    if summary.healthy_windows > 0 {
        out.push_str(&format!(
            "  false incidents on healthy windows: {}/{}\n",
            summary.false_incidents, summary.healthy_windows
        ));
    }
    if !summary.per_class.is_empty() {
        out.push_str("\nclass                  precision  recall   tp  fp  fn\n");
        for (class, s) in &summary.per_class {
            out.push_str(&format!(
                "{class:<22} {:>9.3} {:>7.3} {:>4} {:>3} {:>3}\n",
                s.precision, s.recall, s.tp, s.fp, s.r#fn
            ));
        }
    }
    if !summary.confusion.is_empty() {
        let columns: BTreeSet<&String> =
            summary.confusion.values().flat_map(|r| r.keys()).collect();
        out.push_str("\nconfusion (rows: expected, columns: actual)\n");
        out.push_str(&format!("{:<22}", ""));
        for c in &columns {
            out.push_str(&format!(" {:>8}", abbreviate(c)));
        }
        out.push('\n');
        for (expected, row) in &summary.confusion {
            out.push_str(&format!("{expected:<22}"));
            for c in &columns {
                out.push_str(&format!(" {:>8}", row.get(*c).copied().unwrap_or(0)));
            }
            out.push('\n');
        }
    }
    out
}

fn abbreviate(class: &str) -> String {
    // Column heads stay narrow: initials of each word (kv_cache_saturation -> kcs).
    if class.len() <= 8 {
        return class.to_string();
    }
    class.split('_').filter_map(|w| w.chars().next()).collect()
}
