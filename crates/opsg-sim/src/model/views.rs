//! JSON views of the fleet for `/state` and the admin responses.

use super::*;

impl Fleet {
    /// One deployment as JSON.
    pub fn deployment_json(&self, name: &str) -> Value {
        let Some(d) = self.deployments.get(name) else { return Value::Null };
        let shares = self.traffic_shares();
        json!({
            "name": d.name,
            "weight": d.weight,
            "traffic_share": round3(shares.get(name).copied().unwrap_or(0.0)),
            "status": d.status.as_str(),
            "config_version": d.config_version,
            "config": d.config(),
            "config_history": d.versions.iter().enumerate().map(|(i, c)| json!({"version": i + 1, "config": c})).collect::<Vec<_>>(),
            "replicas": self.replicas.values().filter(|r| r.deployment == name).map(|r| r.name.clone()).collect::<Vec<_>>(),
            "model_name": MODEL_NAME,
        })
    }

    /// One replica as JSON (`metrics_url` needs the listener's host, filled by the server).
    pub fn replica_json(&self, name: &str) -> Value {
        let Some(r) = self.replicas.get(name) else { return Value::Null };
        let ttft = &r.metrics.hists[h::TTFT];
        json!({
            "name": r.name,
            "deployment": r.deployment,
            "node": self.nodes[r.node].name,
            "gpu": r.gpu,
            "port": r.port,
            "up": r.is_up(),
            "down_reason": r.down.as_ref().map(DownReason::describe),
            "restarts": r.restarts,
            "started_at": self.unix(r.started_at),
            "config_version": r.config_version,
            "pid": r.pid,
            "kv_cache_usage": round3(self.kv_usage(r)) + 0.0,
            "waiting": r.waiting.len(),
            "running": r.running.len(),
            "rss_bytes": r.rss_bytes.round(),
            "num_preemptions": r.metrics.preemptions,
            "requests_finished": r.metrics.finished.iter().sum::<u64>(),
            "ttft_p50_s": ttft.quantile(0.5).map(round3),
            "ttft_p90_s": ttft.quantile(0.9).map(round3),
            "ttft_p90_recent_s": r.recent_ttft_quantile(0.9).map(round3),
            "ttft_p90_now_s": r.ttft_now_quantile(0.9, self.time).map(round3),
            "log_path": self.logs.path_of(&r.name),
        })
    }

    /// One node as JSON.
    pub fn node_json(&self, ni: usize) -> Value {
        let n = &self.nodes[ni];
        let used: f64 =
            self.replicas.values().filter(|r| r.node == ni && r.is_up()).map(|r| r.rss_bytes).sum();
        json!({
            "name": n.name,
            "cordoned": n.cordoned,
            "dcgm_port": n.dcgm_port,
            "node_exporter_port": n.node_exporter_port,
            "filesystem_size_bytes": n.fs_size,
            "filesystem_avail_bytes": n.fs_avail(),
            "mem_available_bytes": (n.mem_total - 96.0 * GIB - used).max(0.0).round(),
            "replicas": self.replicas.values().filter(|r| r.node == ni).map(|r| r.name.clone()).collect::<Vec<_>>(),
            "gpus": n.gpus.iter().map(|g| json!({
                "index": g.index, "uuid": g.uuid, "xid": g.xid, "lost": g.lost,
                "ecc_dbe": g.ecc_dbe, "remap_failure": g.remap_failure,
                "replica": self.gpu_tenant(ni, g.index).map(|r| r.name.clone()),
            })).collect::<Vec<_>>(),
            "kern_log_path": self.logs.path_of(&format!("{}-kern", n.name)),
        })
    }

    /// Active faults as JSON.
    pub fn faults_json(&self) -> Value {
        json!(self.faults.iter().map(|f| fault_json(f, self.cfg.epoch)).collect::<Vec<_>>())
    }

    /// The admin log as JSON.
    pub fn admin_log_json(&self) -> Value {
        json!(self
            .admin_log
            .iter()
            .map(|e| json!({"seq": e.seq, "sim_time": e.sim_time, "method": e.method, "path": e.path, "body": e.body, "status": e.status}))
            .collect::<Vec<_>>())
    }
}
