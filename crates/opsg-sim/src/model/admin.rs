//! The admin operations a remediation calls: traffic weights, deployment status, config changes
//! and rollbacks (rolled out as restarts), scaling, replica restarts, node drain/uncordon/cleanup,
//! and the bounded log of every call.

use super::*;

impl Fleet {
    /// `POST /admin/traffic`.
    pub fn set_weights(&mut self, weights: &BTreeMap<String, f64>) -> ApiResult {
        if weights.is_empty() {
            return Err(ApiError::bad("`weights` must name at least one deployment"));
        }
        for (name, w) in weights {
            if !self.deployments.contains_key(name) {
                return Err(ApiError::not_found(format!("no deployment `{name}`")));
            }
            if !w.is_finite() || *w < 0.0 || *w > 1000.0 {
                return Err(ApiError::bad(format!(
                    "weight of `{name}` must be a number in 0..=1000, got {w}"
                )));
            }
        }
        let total: f64 = self
            .deployments
            .values()
            .map(|d| weights.get(&d.name).copied().unwrap_or(d.weight))
            .sum();
        if total <= 0.0 {
            return Err(ApiError::bad("weights must not all be zero"));
        }
        for (name, w) in weights {
            if let Some(d) = self.deployments.get_mut(name) {
                d.weight = *w;
            }
        }
        Ok(json!({
            "weights": self.deployments.values().map(|d| (d.name.clone(), json!(d.weight))).collect::<serde_json::Map<_, _>>(),
            "traffic_shares": self.traffic_shares(),
        }))
    }

    pub(super) fn deployment_mut(&mut self, name: &str) -> Result<&mut Deployment, ApiError> {
        self.deployments
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found(format!("no deployment `{name}`")))
    }

    /// `POST /admin/deployments/<d>/status`.
    pub fn set_status(&mut self, name: &str, status: &str) -> ApiResult {
        let status = match status {
            "active" => DeploymentStatus::Active,
            "drain" => DeploymentStatus::Drain,
            other => {
                return Err(ApiError::bad(format!(
                    "`status` must be `active` or `drain`, not `{other}`"
                )));
            }
        };
        self.deployment_mut(name)?.status = status;
        Ok(self.deployment_json(name))
    }

    /// Restart every replica of a deployment on its current config (a rolling update).
    pub(super) fn rollout(&mut self, deployment: &str) {
        let names: Vec<String> = self
            .replicas
            .values()
            .filter(|r| r.deployment == deployment && r.down != Some(DownReason::Unschedulable))
            .map(|r| r.name.clone())
            .collect();
        for name in names {
            let _ = self.restart_in_place(&name);
        }
    }

    /// `POST /admin/deployments/<d>/config`: a new config version, rolled out to its replicas.
    pub fn change_config(&mut self, name: &str, patch: &ConfigPatch) -> ApiResult {
        let dep = self.deployment_mut(name)?;
        let next = dep.config().apply(patch)?;
        if dep.versions.len() >= 1000 {
            return Err(ApiError::conflict("config history is full (1000 versions)"));
        }
        dep.versions.push(next);
        dep.config_version = dep.versions.len() as u32;
        self.rollout(name);
        self.settle_faults();
        Ok(self.deployment_json(name))
    }

    /// `POST /admin/deployments/<d>/rollback`: run an earlier config version (default: the one
    /// before the current).
    pub fn rollback(&mut self, name: &str, to_version: Option<u32>) -> ApiResult {
        let dep = self.deployment_mut(name)?;
        let target = match to_version {
            Some(v) => v,
            None if dep.config_version > 1 => dep.config_version - 1,
            None => return Err(ApiError::conflict(format!("`{name}` is at version 1"))),
        };
        if target == 0 || target as usize > dep.versions.len() {
            return Err(ApiError::bad(format!(
                "`to_version` {target} does not exist; `{name}` has versions 1..={}",
                dep.versions.len()
            )));
        }
        dep.config_version = target;
        self.rollout(name);
        self.settle_faults();
        Ok(self.deployment_json(name))
    }

    /// `POST /admin/deployments/<d>/scale`.
    pub fn scale(&mut self, name: &str, replicas: u32) -> ApiResult {
        if !self.deployments.contains_key(name) {
            return Err(ApiError::not_found(format!("no deployment `{name}`")));
        }
        if replicas > MAX_REPLICAS {
            return Err(ApiError::bad(format!("`replicas` must be in 0..={MAX_REPLICAS}")));
        }
        let current: Vec<String> = self
            .replicas
            .values()
            .filter(|r| r.deployment == name)
            .map(|r| r.name.clone())
            .collect();
        let n = current.len() as u32;
        if replicas > n {
            let free = self.free_gpu_count();
            if replicas - n > free {
                return Err(ApiError::conflict(format!(
                    "only {free} free GPU(s) on schedulable nodes; cannot add {}",
                    replicas - n
                )));
            }
            for _ in n..replicas {
                self.add_replica(name)?;
            }
        } else {
            // Remove the newest replicas first (highest ordinal), as a ReplicaSet scale-down would.
            let mut ordered = current;
            ordered.sort_by_key(|r| {
                r.rsplit('-').next().and_then(|n| n.parse::<u32>().ok()).unwrap_or(0)
            });
            for victim in ordered.iter().rev().take((n - replicas) as usize) {
                self.lose_inflight(victim);
                self.replicas.remove(victim);
                // Names are never reused: let go of the log file handle too (bounded resources).
                self.logs.close(victim);
            }
            self.settle_faults();
        }
        Ok(self.deployment_json(name))
    }

    /// Restart a replica where it is. Fails when its GPU is lost or its node's disk is full.
    pub(super) fn restart_in_place(&mut self, name: &str) -> Result<(), ApiError> {
        let Some(r) = self.replicas.get(name) else {
            return Err(ApiError::not_found(format!("no replica `{name}`")));
        };
        if r.down == Some(DownReason::Unschedulable) {
            // Pending pods get scheduled when a GPU frees up.
            let Some((node, gpu)) = self.free_gpu(None) else {
                return Err(ApiError::conflict(format!(
                    "replica `{name}` is pending: no free GPU on a schedulable node"
                )));
            };
            let r = self.replicas.get_mut(name).expect("exists");
            r.node = node;
            r.gpu = gpu;
        }
        if self.nodes[self.replicas[name].node].cordoned {
            // The replacement process is scheduled like a new pod: off the cordoned node. With
            // no room elsewhere the restart is refused and the old process keeps serving.
            let Some((node, gpu)) = self.free_gpu(None) else {
                return Err(ApiError::conflict(format!(
                    "replica `{name}` is on cordoned `{}` and no other node has a free GPU",
                    self.nodes[self.replicas[name].node].name
                )));
            };
            let r = self.replicas.get_mut(name).expect("exists");
            r.node = node;
            r.gpu = gpu;
        }
        let r = &self.replicas[name];
        let node = &self.nodes[r.node];
        let epoch = self.cfg.epoch;
        let now = self.time;
        if node.gpus[r.gpu as usize].lost {
            let why = format!(
                "GPU {} on `{}` has fallen off the bus (Xid 79); drain the node",
                r.gpu, node.name
            );
            self.lose_inflight(name);
            let r = self.replicas.get_mut(name).expect("exists");
            r.restarts += 1;
            r.down = Some(DownReason::StartFailed(why.clone()));
            self.logs.start_failed(name, epoch + now, r.pid, crate::logs::Crash::GpuLost);
            return Err(ApiError::conflict(format!("replica `{name}` failed to start: {why}")));
        }
        let utilization = self.deployments[&r.deployment].config().gpu_memory_utilization;
        if utilization > MAX_STARTABLE_GPU_UTILIZATION {
            let why = format!(
                "CUDA out of memory at start-up: gpu_memory_utilization {utilization} leaves no room \
                 for activations; roll the config back"
            );
            self.lose_inflight(name);
            let r = self.replicas.get_mut(name).expect("exists");
            r.restarts += 1;
            r.down = Some(DownReason::StartFailed(why.clone()));
            self.logs.start_failed(name, epoch + now, r.pid, crate::logs::Crash::OutOfMemory);
            return Err(ApiError::conflict(format!("replica `{name}` failed to start: {why}")));
        }
        if node.fs_avail() < 1.0e9 {
            let why = format!("no space left on `{}` (/ is full); clean the node up", node.name);
            self.lose_inflight(name);
            let r = self.replicas.get_mut(name).expect("exists");
            r.restarts += 1;
            r.down = Some(DownReason::StartFailed(why.clone()));
            self.logs.start_failed(name, epoch + now, r.pid, crate::logs::Crash::DiskFull);
            return Err(ApiError::conflict(format!("replica `{name}` failed to start: {why}")));
        }
        let was_running = self.replicas[name].down.is_none();
        self.lose_inflight(name);
        if was_running {
            self.logs.shutdown(name, epoch + now, self.replicas[name].pid);
        }
        let r = self.replicas.get_mut(name).expect("exists");
        r.restarts += 1;
        self.start_process(name);
        Ok(())
    }

    /// `POST /admin/replicas/<r>/restart`.
    pub fn restart(&mut self, name: &str) -> ApiResult {
        self.restart_in_place(name)?;
        self.settle_faults();
        Ok(self.replica_json(name))
    }

    pub(super) fn node_index(&self, name: &str) -> Result<usize, ApiError> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| ApiError::not_found(format!("no node `{name}`")))
    }

    /// `POST /admin/nodes/<n>/drain`: cordon the node and move its replicas to free GPUs on
    /// other nodes (they restart there); with no room they stay pending (down).
    pub fn drain_node(&mut self, name: &str) -> ApiResult {
        let ni = self.node_index(name)?;
        self.nodes[ni].cordoned = true;
        let victims: Vec<String> =
            self.replicas.values().filter(|r| r.node == ni).map(|r| r.name.clone()).collect();
        let mut moved = Vec::new();
        let mut pending = Vec::new();
        let epoch = self.cfg.epoch;
        let now = self.time;
        for victim in victims {
            let was_up = self.replicas[&victim].is_up();
            self.lose_inflight(&victim);
            if was_up {
                self.logs.shutdown(&victim, epoch + now, self.replicas[&victim].pid);
            }
            match self.free_gpu(Some(ni)) {
                Some((node, gpu)) => {
                    let r = self.replicas.get_mut(&victim).expect("exists");
                    r.node = node;
                    r.gpu = gpu;
                    r.restarts += 1;
                    self.start_process(&victim);
                    moved.push(
                        json!({"replica": victim, "node": self.nodes[node].name, "gpu": gpu}),
                    );
                }
                None => {
                    let r = self.replicas.get_mut(&victim).expect("exists");
                    r.down = Some(DownReason::Unschedulable);
                    r.utilization = 0.0;
                    pending.push(victim);
                }
            }
        }
        self.settle_faults();
        let mut out = self.node_json(ni);
        out["moved"] = json!(moved);
        out["pending"] = json!(pending);
        Ok(out)
    }

    /// `POST /admin/nodes/<n>/cordon`: no new replica is placed on the node; what runs there
    /// keeps running, and a replica restarted there is rescheduled elsewhere (a deleted pod's
    /// replacement avoids a cordoned node), which moves one replica off bad hardware without
    /// draining its neighbours.
    pub fn cordon_node(&mut self, name: &str) -> ApiResult {
        let ni = self.node_index(name)?;
        self.nodes[ni].cordoned = true;
        Ok(self.node_json(ni))
    }

    /// `POST /admin/nodes/<n>/uncordon`.
    pub fn uncordon_node(&mut self, name: &str) -> ApiResult {
        let ni = self.node_index(name)?;
        self.nodes[ni].cordoned = false;
        Ok(self.node_json(ni))
    }

    /// `POST /admin/nodes/<n>/cleanup`: delete what filled the root filesystem (rotated logs,
    /// core dumps, stale images); ends a disk-pressure fault on it.
    pub fn cleanup_node(&mut self, name: &str) -> ApiResult {
        let ni = self.node_index(name)?;
        let freed = self.nodes[ni].fs_extra_used;
        self.nodes[ni].fs_extra_used = 0.0;
        self.faults.retain(|f| !(f.kind == FaultKind::DiskPressure && f.node == Some(ni)));
        let mut out = self.node_json(ni);
        out["freed_bytes"] = json!(freed);
        Ok(out)
    }

    /// Record an admin call (bounded).
    pub fn log_admin(&mut self, method: &str, path: &str, body: Value, status: u16) {
        self.admin_seq += 1;
        if self.admin_log.len() >= ADMIN_LOG_CAP {
            self.admin_log.pop_front();
        }
        self.admin_log.push_back(AdminEntry {
            seq: self.admin_seq,
            sim_time: round3(self.time),
            method: method.to_string(),
            path: path.to_string(),
            body,
            status,
        });
    }
}
