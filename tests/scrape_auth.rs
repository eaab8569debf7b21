//! Per-target request settings (`headers`, `ca_file` in a targets file): the real `opsg-scrape`
//! against std::net servers that answer 401 without the right header, and `opsg-verify`'s
//! re-scrape of the same targets from the record alone. Secrets come from the environment or a
//! file and must never reach a record or stderr.

#[path = "scrape_support/mod.rs"]
mod support;

use clap::Parser;
use opsg_core::kinds::observation::{HeaderSource, TargetStatus};
use support::{Reply, Server, record, run_env, target, tempdir};

const PAGE: &str = "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 4\n";

fn guarded(value: &str) -> Reply {
    Reply::Guarded {
        name: "authorization".into(),
        value: value.into(),
        then: Box::new(Reply::text(PAGE)),
    }
}

fn assert_no_secret(out: &std::process::Output, secret: &str) {
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret), "secret in the record");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(secret), "secret on stderr");
}

#[test]
fn a_target_gets_its_own_headers_from_the_environment_and_no_other_target_does() {
    const SECRET: &str = "vllm-t0ken-7f3a9c";
    let server = Server::start(vec![
        ("/guarded", guarded(&format!("Bearer {SECRET}"))),
        ("/open", Reply::text(PAGE)),
    ]);
    let dir = tempdir("auth-env");
    let targets = dir.join("fleet.json");
    std::fs::write(
        &targets,
        format!(
            r#"{{"targets":[
              {{"name":"guarded","url":"{}","headers":{{
                  "Authorization":{{"env":"VLLM_TOKEN","prefix":"Bearer "}},
                  "X-Scope-OrgID":"tenant-b"}}}},
              {{"name":"open","url":"{}"}}]}}"#,
            server.url("/guarded"),
            server.url("/open")
        ),
    )
    .unwrap();
    let args = ["--targets", targets.to_str().unwrap(), "--retries", "0"];

    // With the variable set: the guarded target is up, the other never sees the header.
    let out = run_env(&args, None, &[("VLLM_TOKEN", SECRET)]);
    let (_, body) = record(&out);
    assert_eq!(target(&body, "guarded").status, TargetStatus::Up);
    assert_eq!(target(&body, "open").status, TargetStatus::Up);
    assert_eq!(
        server.header("/guarded", "authorization").as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert_eq!(server.header("/guarded", "x-scope-orgid").as_deref(), Some("tenant-b"));
    assert_eq!(server.header("/open", "authorization"), None, "headers are per target");
    assert_eq!(server.header("/open", "x-scope-orgid"), None);
    // The record says where the value comes from, not what it is.
    let config = &body.scrape_configs["guarded"];
    assert_eq!(
        config.headers["Authorization"],
        HeaderSource::Env { env: "VLLM_TOKEN".into(), prefix: Some("Bearer ".into()) }
    );
    assert_eq!(config.headers["X-Scope-OrgID"], HeaderSource::Value("tenant-b".into()));
    assert!(!body.scrape_configs.contains_key("open"));
    assert_no_secret(&out, SECRET);

    // Without it: that target is an error naming the variable; the run and the other go on.
    let out = run_env(&args, None, &[]);
    let (_, body) = record(&out);
    let t = target(&body, "guarded");
    assert_eq!(t.status, TargetStatus::Error);
    let reason = t.reason.as_deref().unwrap();
    assert!(reason.contains("`VLLM_TOKEN` is not set"), "{reason}");
    assert_eq!(target(&body, "open").status, TargetStatus::Up);

    // A wrong token: the server's 401 is recorded, the wrong secret is not.
    let out = run_env(&args, None, &[("VLLM_TOKEN", "wr0ng-s3cret-value")]);
    let (_, body) = record(&out);
    let t = target(&body, "guarded");
    assert_eq!(t.status, TargetStatus::Error);
    assert!(t.reason.as_deref().unwrap().contains("HTTP 401"), "{:?}", t.reason);
    assert_no_secret(&out, "wr0ng-s3cret-value");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_literal_credential_in_a_targets_file_is_refused() {
    let dir = tempdir("auth-literal");
    let targets = dir.join("fleet.json");
    std::fs::write(
        &targets,
        r#"{"targets":[{"url":"http://127.0.0.1:9/metrics","headers":{"Authorization":"Bearer l1teral-s3cret"}}]}"#,
    )
    .unwrap();
    let out = run_env(&["--targets", targets.to_str().unwrap()], None, &[]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("targets[0].headers.Authorization"), "{stderr}");
    assert!(stderr.contains("fleet.json"), "{stderr}");
    assert_no_secret(&out, "l1teral-s3cret");
    assert!(out.stdout.is_empty());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_bad_ca_file_is_a_reason_for_that_target_only() {
    let server = Server::start(vec![("/metrics", Reply::text(PAGE))]);
    let dir = tempdir("auth-ca");
    std::fs::write(dir.join("not-a-ca.pem"), "hello\n").unwrap();
    let targets = dir.join("fleet.json");
    std::fs::write(
        &targets,
        format!(
            r#"{{"targets":[
              {{"name":"internal","url":"https://127.0.0.1:9/metrics","ca_file":"not-a-ca.pem"}},
              {{"name":"plain","url":"{}"}}]}}"#,
            server.url("/metrics")
        ),
    )
    .unwrap();
    let out = run_env(&["--targets", targets.to_str().unwrap()], None, &[]);
    let (_, body) = record(&out);
    let t = target(&body, "internal");
    assert_eq!(t.status, TargetStatus::Error);
    let reason = t.reason.as_deref().unwrap();
    // Anchored at the targets file's folder, whatever the working directory.
    assert!(reason.contains(&dir.join("not-a-ca.pem").display().to_string()), "{reason}");
    assert!(reason.contains("PEM"), "{reason}");
    assert_eq!(target(&body, "plain").status, TargetStatus::Up);
    assert_eq!(
        body.scrape_configs["internal"].ca_file.as_deref(),
        Some(dir.join("not-a-ca.pem").to_str().unwrap())
    );
    std::fs::remove_dir_all(dir).ok();
}

/// opsg-verify re-scrapes the targets of the observation on the chain: it must send the headers
/// that observation recorded (regression: it re-scraped bare URLs, so an authenticated fleet
/// always looked unreachable after a fix and every verification was inconclusive).
#[test]
fn verify_rescrapes_with_the_recorded_headers() {
    const SECRET: &str = "file-t0ken-52be01";
    let server = Server::start(vec![("/guarded", guarded(&format!("Bearer {SECRET}")))]);
    let dir = tempdir("auth-verify");
    std::fs::write(dir.join("token"), format!("{SECRET}\n")).unwrap();
    let targets = dir.join("fleet.json");
    std::fs::write(
        &targets,
        format!(
            r#"{{"targets":[{{"name":"guarded","url":"{}","headers":{{
                "Authorization":{{"file":"token","prefix":"Bearer "}}}}}}]}}"#,
            server.url("/guarded")
        ),
    )
    .unwrap();
    let out = run_env(&["--targets", targets.to_str().unwrap()], None, &[]);
    let (_, body) = record(&out);
    assert_eq!(target(&body, "guarded").status, TargetStatus::Up);
    assert_no_secret(&out, SECRET);

    let args = opsg_verify::Args::try_parse_from(["opsg-verify", "--samples", "1"]).unwrap();
    let hits = server.hits("/guarded");
    let after = opsg_verify::rescrape(&body.targets, &body.scrape_configs, &args).unwrap();
    assert_eq!(after[0].status, TargetStatus::Up, "{:?}", after[0].reason);
    assert_eq!(after[0].series[0].points[0].v.map(|v| v.0), Some(4.0));
    assert!(server.hits("/guarded") > hits);

    // Without the recorded settings the same re-scrape is refused: the header is what made it work.
    let bare = opsg_verify::rescrape(&body.targets, &Default::default(), &args).unwrap();
    assert_eq!(bare[0].status, TargetStatus::Error);
    assert!(bare[0].reason.as_deref().unwrap().contains("HTTP 401"), "{:?}", bare[0].reason);
    std::fs::remove_dir_all(dir).ok();
}

/// `--bearer-token-file` and `--ca-file` apply to every HTTP target; the record names the files
/// (absolute) so a re-scrape finds them, never the token.
#[test]
fn run_wide_token_and_ca_files_are_recorded_as_references() {
    const SECRET: &str = "runwide-t0ken-9d1";
    let server = Server::start(vec![("/guarded", guarded(&format!("Bearer {SECRET}")))]);
    let dir = tempdir("auth-runwide");
    let token = dir.join("token");
    std::fs::write(&token, format!("{SECRET}\n")).unwrap();
    let out = run_env(
        &["--target", &server.url("/guarded"), "--bearer-token-file", token.to_str().unwrap()],
        None,
        &[],
    );
    let (_, body) = record(&out);
    let name = &body.targets[0].name;
    assert_eq!(body.targets[0].status, TargetStatus::Up);
    assert_eq!(
        body.scrape_configs[name].headers["Authorization"],
        HeaderSource::File { file: token.display().to_string(), prefix: Some("Bearer ".into()) }
    );
    assert_no_secret(&out, SECRET);
    std::fs::remove_dir_all(dir).ok();
}
