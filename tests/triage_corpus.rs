//! The incident corpus (`examples/incidents/`) as a regression suite: every recorded or
//! synthetic case, piped through the real `opsg-triage | opsg-plan` with its recorded clock, must
//! give its expected class and first action. (The benchmark `tests/bench/triage_quality.sh`
//! reports the same run as precision/recall figures.)

mod triage_support;

use serde_json::Value;
use triage_support::*;

#[test]
fn every_corpus_case_gets_its_expected_class_and_first_action() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/incidents");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("corpus")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 70, "the corpus has {} cases", dirs.len());
    let mut wrong = Vec::new();
    for dir in &dirs {
        let case: Value =
            serde_json::from_slice(&std::fs::read(dir.join("case.json")).expect("case.json"))
                .expect("JSON");
        let input = std::fs::read(dir.join("observation.jsonl")).expect("observation");
        let now = case["now"].as_str().expect("now");
        let found = run("opsg-triage", &["--now", now], &input);
        assert_eq!(found.code, 0, "{}: {}", dir.display(), found.stderr);
        let fleet = dir.join("fleet-state.json");
        let mut args = vec!["--now", now];
        let fleet_arg = fleet.to_string_lossy().into_owned();
        if fleet.exists() {
            args.extend(["--fleet-state", fleet_arg.as_str()]);
        }
        let planned = run("opsg-plan", &args, &found.stdout);
        assert_eq!(planned.code, 0, "{}: {}", dir.display(), planned.stderr);
        let records = planned.records();
        let class = &records[records.len() - 2]["body"]["class"];
        let action =
            records[records.len() - 1]["body"]["actions"][0]["action"].as_str().unwrap_or("none");
        if class != &case["expected_class"] || action != case["expected_first_action"] {
            wrong.push(format!(
                "{}: want {} / {}, got {class} / {action}",
                dir.file_name().unwrap_or_default().to_string_lossy(),
                case["expected_class"],
                case["expected_first_action"]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        dirs.len(),
        wrong.join("\n")
    );
}
