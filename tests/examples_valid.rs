//! Every sample config in `examples/` is valid against its schema in `schemas/`, and every
//! recording in the incident corpus is a valid, intact chain: a user copying an example gets a
//! file the tools accept.

use opsg_core::stream::{Limits, read_chain};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The schema a config example is checked against, by its file name.
fn schema_for(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    let parent = path.parent()?.file_name()?.to_str()?;
    Some(match (parent, name) {
        (_, n) if n.starts_with("policy") => "policy.schema.json",
        (_, n) if n.starts_with("rules") => "rules.schema.json",
        (_, n) if n.starts_with("catalog") => "catalog.schema.json",
        (_, n) if n.starts_with("actuators") => "actuators.schema.json",
        (_, n) if n.starts_with("targets") => "targets.schema.json",
        ("campaign", _) => "campaign.schema.json",
        _ => return None,
    })
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "incidents") {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

#[test]
fn every_example_config_matches_its_schema() {
    let mut files = Vec::new();
    json_files(&root().join("examples"), &mut files);
    files.sort();
    assert!(files.len() >= 5, "expected the sample configs, found {files:?}");
    for path in files {
        let schema = schema_for(&path)
            .unwrap_or_else(|| panic!("{}: no schema known for this example", path.display()));
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(e) = opsg_core::schema::validate(schema, &value) {
            panic!("{} does not match {schema}: {e}", path.display());
        }
    }
}

#[test]
fn every_corpus_recording_is_an_intact_valid_chain() {
    let dir = root().join("examples/incidents");
    let mut n = 0;
    for case in std::fs::read_dir(&dir).unwrap() {
        let case = case.unwrap().path();
        for entry in std::fs::read_dir(&case).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                let file = std::fs::File::open(&path).unwrap();
                // read_chain checks seals, links, schema ids and each record's schema.
                read_chain(
                    std::io::BufReader::new(file),
                    &path.display().to_string(),
                    &Limits::default(),
                )
                .unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap())
                .unwrap();
        assert!(meta["expected_class"].is_string(), "{}: no expected_class", case.display());
    }
    assert!(n >= 70, "the corpus holds {n} recordings");
}
