//! The eight faults: what each targets, what injecting it does, what clearing it undoes, and
//! when a remediation has ended it.

use super::*;

/// The faults that can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// A deployment's request mix shifts to long contexts and long generations: each sequence
    /// holds about three times the KV, the cache fills, requests are preempted and queue.
    KvCacheSaturation,
    /// Fleet-wide arrival rate jumps: queue backlog.
    TrafficSurge,
    /// A canary config change regresses TTFT.
    CanaryRegression,
    /// A replica's engine dies.
    ReplicaCrash,
    /// A GPU reports XID/ECC errors.
    GpuFault,
    /// A replica's RSS grows until the memory limit kills it.
    MemoryLeak,
    /// A replica's node network slows its collective ops and its /metrics.
    NetworkLatency,
    /// A node's root filesystem fills.
    DiskPressure,
}

impl FaultKind {
    /// Every fault, in documentation order.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::KvCacheSaturation,
        FaultKind::TrafficSurge,
        FaultKind::CanaryRegression,
        FaultKind::ReplicaCrash,
        FaultKind::GpuFault,
        FaultKind::MemoryLeak,
        FaultKind::NetworkLatency,
        FaultKind::DiskPressure,
    ];

    /// The URL name.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::KvCacheSaturation => "kv_cache_saturation",
            FaultKind::TrafficSurge => "traffic_surge",
            FaultKind::CanaryRegression => "canary_regression",
            FaultKind::ReplicaCrash => "replica_crash",
            FaultKind::GpuFault => "gpu_fault",
            FaultKind::MemoryLeak => "memory_leak",
            FaultKind::NetworkLatency => "network_latency",
            FaultKind::DiskPressure => "disk_pressure",
        }
    }

    /// Parse a URL name.
    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// What the target names: `deployment`, `replica`, `node` or `fleet`.
    pub fn target_kind(self) -> &'static str {
        match self {
            FaultKind::KvCacheSaturation | FaultKind::CanaryRegression => "deployment",
            FaultKind::TrafficSurge => "fleet",
            FaultKind::ReplicaCrash
            | FaultKind::GpuFault
            | FaultKind::MemoryLeak
            | FaultKind::NetworkLatency => "replica",
            FaultKind::DiskPressure => "node",
        }
    }

    /// What an SRE does about it (listed by `GET /`, `/chaos` and the README).
    pub fn remediation(self) -> &'static str {
        match self {
            FaultKind::KvCacheSaturation => {
                "shift traffic away (POST /admin/traffic) or scale the deployment up"
            }
            FaultKind::TrafficSurge => "scale up (POST /admin/deployments/<d>/scale)",
            FaultKind::CanaryRegression => {
                "roll the canary config back (POST /admin/deployments/<d>/rollback) or drain it"
            }
            FaultKind::ReplicaCrash => "restart the replica (POST /admin/replicas/<r>/restart)",
            FaultKind::GpuFault => {
                "cordon the node and restart the replica (POST /admin/nodes/<n>/cordon, then /admin/replicas/<r>/restart): it moves to a healthy GPU; or drain the node"
            }
            FaultKind::MemoryLeak => "restart the replica (POST /admin/replicas/<r>/restart)",
            FaultKind::NetworkLatency => {
                "cordon the node and restart the replica (it moves off the bad link), or drain the node"
            }
            FaultKind::DiskPressure => "clean the node up (POST /admin/nodes/<n>/cleanup)",
        }
    }
}

/// An active fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Which fault.
    pub kind: FaultKind,
    /// Target name (deployment, replica, node, or `fleet`).
    pub target: String,
    /// Intensity in [0, 1].
    pub intensity: f64,
    /// Sim time it started.
    pub started_at: f64,
    /// Node the fault is bound to (GPU, network and disk faults stay with the hardware).
    pub node: Option<usize>,
    /// GPU the fault is bound to.
    pub gpu: Option<u32>,
    /// Config version that was active before a canary regression.
    pub previous_version: Option<u32>,
    /// A KV-saturation target's traffic share when the burst began: as its weight drops below
    /// this, the burst's requests go to the other deployments instead (the router moves them).
    pub share_at_start: Option<f64>,
    /// Config version the regression introduced.
    pub bad_version: Option<u32>,
    /// Sim time at which the fault ends by itself (a transient incident), if it does.
    pub ends_at: Option<f64>,
}

impl Fleet {
    /// `POST /chaos/<fault>`: start (or re-tune) a fault.
    pub fn inject(&mut self, kind: FaultKind, target: Option<&str>, intensity: f64) -> ApiResult {
        self.inject_for(kind, target, intensity, None)
    }

    /// [`Fleet::inject`] with an optional lifetime: after `duration_s` sim seconds the fault ends
    /// by itself, as `DELETE /chaos/<fault>` would end it (a transient incident).
    pub fn inject_for(
        &mut self,
        kind: FaultKind,
        target: Option<&str>,
        intensity: f64,
        duration_s: Option<f64>,
    ) -> ApiResult {
        if !(0.0..=1.0).contains(&intensity) || !intensity.is_finite() {
            return Err(ApiError::bad("`intensity` must be a number in 0..=1"));
        }
        if duration_s.is_some_and(|d| !d.is_finite() || d <= 0.0 || d > 86_400.0) {
            return Err(ApiError::bad("`duration_s` must be a number in (0, 86400]"));
        }
        let ends_at = duration_s.map(|d| self.time + d);
        let target = match (kind.target_kind(), target) {
            ("fleet", None | Some("fleet")) => "fleet".to_string(),
            ("fleet", Some(other)) => {
                return Err(ApiError::bad(format!(
                    "`{}` targets the whole fleet; `target` must be `fleet`, not `{other}`",
                    kind.as_str()
                )));
            }
            ("deployment", None) => "canary".to_string(),
            (_, Some(t)) => t.to_string(),
            (what, None) => {
                return Err(ApiError::bad(format!(
                    "`{}` needs a `target` ({what} name)",
                    kind.as_str()
                )));
            }
        };
        match kind.target_kind() {
            "deployment" if !self.deployments.contains_key(&target) => {
                return Err(ApiError::not_found(format!("no deployment `{target}`")));
            }
            "replica" if !self.replicas.contains_key(&target) => {
                return Err(ApiError::not_found(format!("no replica `{target}`")));
            }
            "node" if !self.nodes.iter().any(|n| n.name == target) => {
                return Err(ApiError::not_found(format!("no node `{target}`")));
            }
            _ => {}
        }
        if let Some(existing) =
            self.faults.iter_mut().find(|f| f.kind == kind && f.target == target)
        {
            existing.intensity = intensity;
            if ends_at.is_some() {
                existing.ends_at = ends_at;
            }
            let out = fault_json(existing, self.cfg.epoch);
            return Ok(json!({"updated": true, "fault": out}));
        }
        let mut fault = Fault {
            kind,
            target: target.clone(),
            intensity,
            started_at: self.time,
            node: None,
            gpu: None,
            previous_version: None,
            share_at_start: None,
            bad_version: None,
            ends_at,
        };
        let epoch = self.cfg.epoch;
        let now = self.time;
        match kind {
            FaultKind::ReplicaCrash => {
                if !self.replicas[&target].is_up() {
                    return Err(ApiError::conflict(format!("replica `{target}` is already down")));
                }
                self.crash(&target, "replica_crash", crate::logs::Crash::IllegalMemoryAccess);
            }
            FaultKind::GpuFault | FaultKind::NetworkLatency => {
                let r = &self.replicas[&target];
                fault.node = Some(r.node);
                fault.gpu = Some(r.gpu);
                if kind == FaultKind::GpuFault {
                    let (node, gpu, pid) = (r.node, r.gpu, r.pid);
                    let xid = if intensity >= 0.9 {
                        79
                    } else if intensity >= 0.5 {
                        48
                    } else {
                        63
                    };
                    let node_name = self.nodes[node].name.clone();
                    let g = &mut self.nodes[node].gpus[gpu as usize];
                    g.xid = xid;
                    match xid {
                        79 => {
                            g.lost = true;
                            g.ecc_dbe += 1.0;
                            g.remapped_uncorrectable += 1.0;
                            g.remap_failure = true;
                        }
                        48 => {
                            g.ecc_dbe += 1.0;
                            g.remapped_uncorrectable += 1.0;
                        }
                        _ => g.remapped_correctable += 1.0,
                    }
                    let bus = g.pci_bus_id.clone();
                    self.logs.xid(&node_name, epoch + now, &bus, xid, pid);
                    if xid == 79 {
                        self.crash(&target, "gpu_fault: Xid 79", crate::logs::Crash::GpuLost);
                    } else if xid == 48 {
                        self.logs.ecc_error(&target, epoch + now, pid);
                    }
                }
            }
            FaultKind::MemoryLeak => {}
            FaultKind::DiskPressure => {
                fault.node = self.nodes.iter().position(|n| n.name == target);
            }
            FaultKind::CanaryRegression => {
                let dep = self.deployments.get_mut(&target).expect("checked above");
                let previous = dep.config_version;
                // The "tuning" change: CUDA graphs off and a tiny step budget; the harder the
                // intensity, the smaller the budget, so prompts need many chunked-prefill steps.
                let budget = (8192.0 * (1.0 - intensity).powi(3)).max(32.0) as u32 / 16 * 16;
                let patch = ConfigPatch {
                    enforce_eager: Some(true),
                    max_num_batched_tokens: Some(budget.max(32)),
                    ..ConfigPatch::default()
                };
                let next = dep.config().apply(&patch)?;
                dep.versions.push(next);
                dep.config_version = dep.versions.len() as u32;
                fault.previous_version = Some(previous);
                fault.bad_version = Some(dep.config_version);
                self.rollout(&target);
            }
            FaultKind::KvCacheSaturation => {
                fault.share_at_start =
                    self.traffic_shares().get(&target).copied().filter(|s| *s > 0.0);
            }
            FaultKind::TrafficSurge => {}
        }
        let out = fault_json(&fault, self.cfg.epoch);
        self.faults.push(fault);
        Ok(json!({"updated": false, "fault": out}))
    }

    /// `DELETE /chaos/<fault>`: end the fault and undo its direct effects (the test harness's
    /// undo, not a remediation): crashed or leaking replicas restart, a regressed config is rolled
    /// back, a GPU is replaced, a filled disk is cleaned.
    pub fn clear(&mut self, kind: FaultKind, target: Option<&str>) -> ApiResult {
        let (gone, kept): (Vec<Fault>, Vec<Fault>) = std::mem::take(&mut self.faults)
            .into_iter()
            .partition(|f| f.kind == kind && target.is_none_or(|t| t == f.target));
        self.faults = kept;
        if gone.is_empty() {
            return Err(ApiError::not_found(format!(
                "no active `{}` fault{}",
                kind.as_str(),
                target.map(|t| format!(" on `{t}`")).unwrap_or_default()
            )));
        }
        for f in &gone {
            match f.kind {
                FaultKind::ReplicaCrash | FaultKind::MemoryLeak
                    if self.replicas.contains_key(&f.target) =>
                {
                    let _ = self.restart_in_place(&f.target);
                }
                FaultKind::GpuFault => {
                    if let (Some(ni), Some(g)) = (f.node, f.gpu) {
                        let gpu = &mut self.nodes[ni].gpus[g as usize];
                        gpu.xid = 0;
                        gpu.lost = false;
                        gpu.remap_failure = false;
                        let crashed = self
                            .replicas
                            .values()
                            .filter(|r| r.node == ni && r.gpu == g && r.down.is_some())
                            .map(|r| r.name.clone())
                            .collect::<Vec<_>>();
                        for name in crashed {
                            let _ = self.restart_in_place(&name);
                        }
                    }
                }
                FaultKind::DiskPressure => {
                    if let Some(ni) = f.node {
                        self.nodes[ni].fs_extra_used = 0.0;
                    }
                }
                FaultKind::CanaryRegression => {
                    // Still listed means its settings still run: back to the version before.
                    if let Some(prev) = f.previous_version
                        && let Some(dep) = self.deployments.get_mut(&f.target)
                    {
                        dep.config_version = prev;
                        self.rollout(&f.target.clone());
                    }
                }
                _ => {}
            }
        }
        let epoch = self.cfg.epoch;
        Ok(json!({"cleared": gone.iter().map(|f| fault_json(f, epoch)).collect::<Vec<_>>()}))
    }

    /// End the faults whose `duration_s` has run out, as `DELETE /chaos/<fault>` would.
    pub(super) fn expire_faults(&mut self) {
        let now = self.time;
        let due: Vec<(FaultKind, String)> = self
            .faults
            .iter()
            .filter(|f| f.ends_at.is_some_and(|t| t <= now + 1e-9))
            .map(|f| (f.kind, f.target.clone()))
            .collect();
        for (kind, target) in due {
            let _ = self.clear(kind, Some(&target));
        }
    }

    /// Drop faults whose condition a remediation has ended (the replica moved off the bad
    /// hardware, the config was rolled back, the crashed replica restarted).
    pub(super) fn settle_faults(&mut self) {
        let replicas = &self.replicas;
        let deployments = &self.deployments;
        self.faults.retain(|f| match f.kind {
            FaultKind::ReplicaCrash => replicas.get(&f.target).is_some_and(|r| r.down.is_some()),
            FaultKind::MemoryLeak => replicas.contains_key(&f.target),
            FaultKind::NetworkLatency => {
                replicas.get(&f.target).is_some_and(|r| Some(r.node) == f.node)
            }
            // The regression lasts while its settings run, whatever version carries them (a
            // config change on top of the bad version keeps it; a rollback or a fix ends it).
            FaultKind::CanaryRegression => deployments.get(&f.target).is_some_and(|d| {
                f.bad_version.and_then(|v| d.versions.get(v as usize - 1)).is_some_and(|bad| {
                    d.config().enforce_eager == bad.enforce_eager
                        && d.config().max_num_batched_tokens == bad.max_num_batched_tokens
                })
            }),
            _ => true,
        });
    }
}

pub(super) fn fault_json(f: &Fault, epoch: f64) -> Value {
    json!({
        "fault": f.kind.as_str(),
        "target": f.target,
        "target_kind": f.kind.target_kind(),
        "intensity": f.intensity,
        "started_at": epoch + f.started_at,
        "started_sim_time": round3(f.started_at),
        "remediation": f.kind.remediation(),
        "bad_config_version": f.bad_version,
        "previous_config_version": f.previous_version,
        "ends_at": f.ends_at.map(|t| epoch + t),
    })
}
