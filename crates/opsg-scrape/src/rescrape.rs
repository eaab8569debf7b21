//! Reading again the targets an observation recorded, the way they were read: what `opsg-verify`
//! does after a fix. HTTP targets are scraped with the request settings the observation kept for
//! them (`scrape_configs`: header sources, CA file, resolved again here from this process'
//! environment and files); targets read through a Prometheus' `/federate` are federated again
//! with the same selectors and picked out by instance. Recorded captures and query-derived
//! targets (`prometheus:`) cannot be read again and are left out.

use crate::federate;
use crate::fetch;
use crate::scrape::{ScrapeOptions, scrape_targets};
use crate::target::{Source, Target};
use opsg_core::Result;
use opsg_core::kinds::observation::{SampleInfo, ScrapeConfig, TargetObservation, TargetStatus};
use std::collections::BTreeMap;

/// The re-read observations of the targets that can be read again, in the order given.
pub fn rescrape(
    targets: &[TargetObservation],
    scrape_configs: &BTreeMap<String, ScrapeConfig>,
    opts: &ScrapeOptions,
) -> Result<Vec<TargetObservation>> {
    let mut http = Vec::new();
    // (endpoint, config) → the targets federated through it.
    let mut federated: Vec<(&str, &ScrapeConfig, Vec<&TargetObservation>)> = Vec::new();
    for t in targets {
        if t.source.starts_with("http://") || t.source.starts_with("https://") {
            http.push(Target {
                name: t.name.clone(),
                source: Source::Http(t.source.clone()),
                labels: t.labels.clone(),
            });
        } else if let Some(endpoint) = t.source.strip_prefix("federate:")
            && let Some(config) = scrape_configs.get(&t.name).filter(|c| !c.federate.is_empty())
        {
            match federated.iter_mut().find(|(e, c, _)| *e == endpoint && *c == config) {
                Some((_, _, group)) => group.push(t),
                None => federated.push((endpoint, config, vec![t])),
            }
        }
    }
    let mut out: BTreeMap<String, TargetObservation> = BTreeMap::new();
    if !http.is_empty() {
        let opts = ScrapeOptions { scrape_configs: scrape_configs.clone(), ..opts.clone() };
        for t in scrape_targets(&http, &opts)? {
            out.insert(t.name.clone(), t);
        }
    }
    for (endpoint, config, group) in federated {
        let http = match fetch::target_options(config, &opts.http) {
            Ok(http) => http,
            Err(reason) => {
                for t in group {
                    out.insert(t.name.clone(), failed(t, opts, TargetStatus::Error, &reason));
                }
                continue;
            }
        };
        let group_opts = ScrapeOptions { http, ..opts.clone() };
        let (scraped, call) = federate::federate(endpoint, &config.federate, &group_opts)?;
        for t in group {
            let found = scraped
                .targets
                .iter()
                .find(|x| x.name == t.name)
                .or_else(|| scraped.targets.iter().find(|x| x.name == instance_of(&t.name)));
            let again = match found {
                Some(x) => TargetObservation {
                    name: t.name.clone(),
                    labels: t.labels.clone(),
                    ..x.clone()
                },
                None if call.status != "ok" => failed(
                    t,
                    opts,
                    TargetStatus::Error,
                    call.reason.as_deref().unwrap_or("federation failed"),
                ),
                None => failed(
                    t,
                    opts,
                    TargetStatus::Down,
                    "absent from Prometheus' federation answer: it has no current series for this instance",
                ),
            };
            out.insert(t.name.clone(), again);
        }
    }
    Ok(targets.iter().filter_map(|t| out.remove(&t.name)).collect())
}

/// A federated target renamed `x#2` on a name clash is instance `x`.
fn instance_of(name: &str) -> &str {
    match name.rsplit_once('#') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}

fn failed(
    t: &TargetObservation,
    opts: &ScrapeOptions,
    status: TargetStatus,
    reason: &str,
) -> TargetObservation {
    TargetObservation {
        name: t.name.clone(),
        source: t.source.clone(),
        labels: t.labels.clone(),
        status,
        reason: Some(reason.to_string()),
        samples: vec![SampleInfo {
            at: opts.clock.now().to_rfc3339(),
            status,
            duration_ms: 0.0,
            reason: Some(reason.to_string()),
            stale: false,
            evidence: None,
        }],
        series: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renamed_instances() {
        assert_eq!(instance_of("10.0.0.7:8000#2"), "10.0.0.7:8000");
        assert_eq!(instance_of("10.0.0.7:8000"), "10.0.0.7:8000");
        assert_eq!(instance_of("odd#name"), "odd#name");
        assert_eq!(instance_of("x#"), "x#");
    }

    #[test]
    fn captures_and_query_targets_are_left_out() {
        let t = |name: &str, source: &str| TargetObservation {
            name: name.into(),
            source: source.into(),
            labels: BTreeMap::new(),
            status: TargetStatus::Up,
            reason: None,
            samples: Vec::new(),
            series: Vec::new(),
        };
        let targets = [
            t("cap", "capture.prom"),
            t("stdin", "-"),
            t("q", "prometheus:http://p:9090"),
            // Federated, but the observation kept no selectors: nothing to send again.
            t("f", "federate:http://p:9090"),
        ];
        let again = rescrape(&targets, &BTreeMap::new(), &ScrapeOptions::default()).unwrap();
        assert!(again.is_empty());
    }
}
