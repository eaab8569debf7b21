//! Print the finding for one synthetic scenario (a debugging aid): `peek <class|healthy:N> [seed]`.

use opsg_core::kinds::finding::IncidentClass;
use opsg_triage::synth::{self, Scenario};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "kv_cache_saturation".into());
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let scenario = match which.strip_prefix("healthy:") {
        Some(v) => Scenario::Healthy { variant: v.parse().unwrap_or(0) },
        None => Scenario::Fault(
            serde_json::from_value::<IncidentClass>(serde_json::json!(which))
                .unwrap_or(IncidentClass::Unknown),
        ),
    };
    let obs = synth::observation(scenario, seed, 1_795_000_000_000);
    let f = opsg_triage::triage(&obs, &opsg_triage::Rules::builtin());
    let text = serde_json::to_string_pretty(&f).unwrap_or_default();
    std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes()).ok();
}
