//! GPU state through NVML: utilization, memory, temperature, power, clocks and throttle reasons,
//! ECC error counts (volatile and aggregate), retired pages and remapped rows, and XID events seen
//! during a short, bounded watch.
//!
//! Hardware is reached through [`GpuSource`]: [`NvmlSource`] talks to the real driver (through
//! nvml-wrapper, which `dlopen`s `libnvidia-ml.so.1` at run time, so the binary builds and runs
//! on hosts without a driver), and [`FixtureSource`] replays a snapshot for tests. Without the
//! library, without a driver or without a GPU the result is `{"available": false, "reason": …}`:
//! never a crash. A metric one GPU does not support (ECC on a consumer card, retired pages on
//! Ampere and later, which remap rows instead) is `null` and its reason is listed under
//! `unsupported`.

use super::procfile::unavailable;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// A reading NVML may refuse for one device: the value or why not.
pub type Reading<T> = Result<T, String>;

/// Default time spent watching for XID events.
pub const DEFAULT_XID_WINDOW: Duration = Duration::from_millis(100);
/// The most XID events kept from one window (a flapping GPU can raise thousands).
pub const MAX_XID_EVENTS: usize = 64;
/// Deadline for the whole NVML snapshot besides the XID window: `nvmlInit` can stall for seconds
/// on a host without persistence mode, and a wedged driver can stall forever.
pub const NVML_DEADLINE: Duration = Duration::from_secs(15);

/// ECC error counters of one device.
#[derive(Debug, Clone, Deserialize)]
pub struct EccCounts {
    /// ECC mode currently enabled.
    pub enabled: Reading<bool>,
    /// Corrected (single-bit) errors since the driver loaded.
    pub volatile_corrected: Reading<u64>,
    /// Uncorrected (double-bit) errors since the driver loaded.
    pub volatile_uncorrected: Reading<u64>,
    /// Corrected errors over the device's lifetime.
    pub aggregate_corrected: Reading<u64>,
    /// Uncorrected errors over the device's lifetime.
    pub aggregate_uncorrected: Reading<u64>,
}

/// Page retirement (Kepler to Volta): pages taken out of service after ECC errors.
#[derive(Debug, Clone, Deserialize)]
pub struct RetiredPages {
    /// Retired after multiple single-bit errors.
    pub single_bit: u64,
    /// Retired after a double-bit error.
    pub double_bit: u64,
    /// Retirements waiting for the next driver reload.
    pub pending: bool,
}

/// Row remapping (Ampere and later): the successor of page retirement.
#[derive(Debug, Clone, Deserialize)]
pub struct RemappedRows {
    /// Rows remapped for corrected errors.
    pub corrected: u64,
    /// Rows remapped for uncorrected errors.
    pub uncorrected: u64,
    /// A remap waits for a GPU reset.
    pub pending: bool,
    /// A remap failed: the GPU needs servicing.
    pub failure: bool,
}

/// A compute process holding GPU memory (maps a vLLM pid to its GPU).
#[derive(Debug, Clone, Deserialize)]
pub struct GpuProcess {
    /// Process id (in NVML's, i.e. the host's, pid namespace).
    pub pid: u32,
    /// GPU memory it holds, bytes; `None` when the driver cannot say.
    pub used_bytes: Option<u64>,
}

fn not_recorded<T>() -> Reading<T> {
    Err("not recorded".to_string())
}

/// One GPU's state.
#[derive(Debug, Clone, Deserialize)]
pub struct GpuDevice {
    /// NVML index.
    pub index: u32,
    /// Product name (`NVIDIA H100 80GB HBM3`).
    pub name: Reading<String>,
    /// `GPU-…` UUID.
    pub uuid: Reading<String>,
    /// PCI bus id (`00000000:3B:00.0`), which the kernel's Xid lines name.
    pub pci_bus_id: Reading<String>,
    /// Percent of time a kernel ran, over the driver's sample period.
    pub utilization_gpu_pct: Reading<u32>,
    /// Percent of time device memory was read or written.
    pub utilization_memory_pct: Reading<u32>,
    /// Framebuffer total, bytes.
    pub memory_total_bytes: Reading<u64>,
    /// Framebuffer used, bytes.
    pub memory_used_bytes: Reading<u64>,
    /// GPU core temperature, °C.
    pub temperature_c: Reading<u32>,
    /// Power draw, milliwatts.
    pub power_draw_mw: Reading<u32>,
    /// Enforced power limit, milliwatts.
    pub power_limit_mw: Reading<u32>,
    /// SM clock, MHz.
    pub clock_sm_mhz: Reading<u32>,
    /// Memory clock, MHz.
    pub clock_memory_mhz: Reading<u32>,
    /// Maximum SM clock, MHz.
    pub clock_sm_max_mhz: Reading<u32>,
    /// Active clock throttle reasons, snake_case (`gpu_idle`, `hw_slowdown`, `sw_power_cap`).
    pub throttle_reasons: Reading<Vec<String>>,
    /// ECC counters.
    pub ecc: EccCounts,
    /// Retired pages.
    pub retired_pages: Reading<RetiredPages>,
    /// Remapped rows.
    pub remapped_rows: Reading<RemappedRows>,
    /// Compute processes on this GPU.
    #[serde(default = "not_recorded")]
    pub processes: Reading<Vec<GpuProcess>>,
}

/// One critical XID event.
#[derive(Debug, Clone, Deserialize)]
pub struct XidEvent {
    /// Index of the GPU that raised it, when known.
    pub gpu_index: Option<u32>,
    /// UUID of the GPU that raised it, when known.
    pub uuid: Option<String>,
    /// The XID code (79: fallen off the bus, 48: double-bit ECC, 63/64: row remap, 13: SM
    /// exception…); `None` when NVML could not tell.
    pub xid: Option<u64>,
}

/// Everything one NVML pass saw.
#[derive(Debug, Clone, Deserialize)]
pub struct GpuSnapshot {
    /// Driver version (`550.54.15`).
    pub driver_version: Reading<String>,
    /// CUDA driver API version (`12.4`).
    pub cuda_driver_version: Reading<String>,
    /// The GPUs.
    pub devices: Vec<GpuDevice>,
    /// XID events seen while watching, or why they could not be watched.
    pub xid_events: Reading<Vec<XidEvent>>,
    /// How long the watch lasted.
    pub xid_window_ms: u64,
}

/// Where GPU state comes from. `Sync` so the collector can run it beside the other sources.
pub trait GpuSource: Sync {
    /// Take a snapshot, watching for XID events for up to `xid_window`. `Err` says why there is
    /// nothing to report (no library, no driver, no GPU).
    fn snapshot(&self, xid_window: Duration) -> Result<GpuSnapshot, String>;
}

/// A recorded snapshot (or a recorded failure), for tests and replays.
#[derive(Debug, Clone)]
pub struct FixtureSource(pub Result<GpuSnapshot, String>);

impl FixtureSource {
    /// Parse a snapshot from JSON: the fields of [`GpuSnapshot`], each [`Reading`] written as
    /// `{"Ok": value}` or `{"Err": "reason"}`.
    pub fn from_json(text: &str) -> Result<FixtureSource, String> {
        serde_json::from_str(text)
            .map(|s| FixtureSource(Ok(s)))
            .map_err(|e| format!("GPU fixture: {e}"))
    }
}

impl GpuSource for FixtureSource {
    fn snapshot(&self, _xid_window: Duration) -> Result<GpuSnapshot, String> {
        self.0.clone()
    }
}

/// The real driver, through NVML.
#[derive(Debug, Clone, Default)]
pub struct NvmlSource {
    /// Load NVML from this path instead of `libnvidia-ml.so.1` on the loader's search path.
    pub lib_path: Option<PathBuf>,
}

impl GpuSource for NvmlSource {
    fn snapshot(&self, xid_window: Duration) -> Result<GpuSnapshot, String> {
        // NVML runs on its own thread so a stalled driver cannot stall the scrape past the
        // deadline; a thread stuck in the driver is abandoned (the process exits soon after).
        let (tx, rx) = std::sync::mpsc::channel();
        let lib_path = self.lib_path.clone();
        let spawned = std::thread::Builder::new().name("opsg-nvml".into()).spawn(move || {
            let _ = tx.send(nvml::snapshot(lib_path.as_deref(), xid_window));
        });
        if let Err(e) = spawned {
            return Err(format!("cannot start the NVML thread: {e}"));
        }
        let deadline = NVML_DEADLINE + xid_window;
        match rx.recv_timeout(deadline) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "NVML did not answer within {} s (driver stalled?)",
                deadline.as_secs()
            )),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err("the NVML thread ended without a result".to_string())
            }
        }
    }
}

mod nvml {
    //! The nvml-wrapper calls, kept apart so the mapping above stays testable without a GPU.

    use super::{
        EccCounts, GpuDevice, GpuProcess, GpuSnapshot, MAX_XID_EVENTS, Reading, RemappedRows,
        RetiredPages, XidEvent,
    };
    use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};
    use nvml_wrapper::enums::device::SampleValue;
    use nvml_wrapper::error::NvmlError;
    use nvml_wrapper::struct_wrappers::device::FieldValueSample;
    use nvml_wrapper::structs::device::FieldId;
    use nvml_wrapper::sys_exports::field_id::{
        NVML_FI_DEV_REMAPPED_COR, NVML_FI_DEV_REMAPPED_FAILURE, NVML_FI_DEV_REMAPPED_PENDING,
        NVML_FI_DEV_REMAPPED_UNC, NVML_FI_DEV_RETIRED_DBE, NVML_FI_DEV_RETIRED_PENDING,
        NVML_FI_DEV_RETIRED_SBE,
    };
    use nvml_wrapper::{Device, Nvml, bitmasks::event::EventTypes};
    use std::path::Path;
    use std::time::{Duration, Instant};

    fn reason(err: &NvmlError) -> String {
        match err {
            NvmlError::NotSupported => "not supported on this GPU".to_string(),
            NvmlError::NoPermission => "no permission".to_string(),
            NvmlError::GpuLost => "GPU lost (fallen off the bus)".to_string(),
            other => other.to_string(),
        }
    }

    /// Why NVML could not start, in words an operator can act on.
    pub(super) fn init_reason(err: &NvmlError, lib: &str) -> String {
        match err {
            NvmlError::LibloadingError(e) => format!(
                "NVML library `{lib}` could not be loaded ({e}): no NVIDIA driver on this host"
            ),
            NvmlError::FailedToLoadSymbol(s) => {
                format!("NVML library `{lib}` lacks `{s}`: driver too old for this tool")
            }
            NvmlError::DriverNotLoaded => "the NVIDIA kernel driver is not loaded".to_string(),
            NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".to_string(),
            other => format!("NVML initialization failed: {other}"),
        }
    }

    fn read<T>(r: Result<T, NvmlError>) -> Reading<T> {
        r.map_err(|e| reason(&e))
    }

    fn field_u64(sample: Option<&Result<FieldValueSample, NvmlError>>) -> Reading<u64> {
        match sample {
            Some(Ok(s)) => match &s.value {
                Ok(SampleValue::U64(v)) => Ok(*v),
                Ok(SampleValue::U32(v)) => Ok(u64::from(*v)),
                Ok(SampleValue::I64(v)) => {
                    u64::try_from(*v).map_err(|_| format!("negative value {v}"))
                }
                Ok(SampleValue::F64(v)) => Ok(v.max(0.0) as u64),
                Err(e) => Err(reason(e)),
            },
            Some(Err(e)) => Err(reason(e)),
            None => Err("field not returned".to_string()),
        }
    }

    fn fields(device: &Device<'_>, ids: &[u32]) -> Reading<Vec<Reading<u64>>> {
        let ids: Vec<FieldId> = ids.iter().map(|&i| FieldId(i)).collect();
        let samples = device.field_values_for(&ids).map_err(|e| reason(&e))?;
        Ok((0..ids.len()).map(|i| field_u64(samples.get(i))).collect())
    }

    fn device_state(index: u32, device: &Device<'_>) -> GpuDevice {
        let memory = device.memory_info();
        let (total, used) = match memory {
            Ok(m) => (Ok(m.total), Ok(m.used)),
            Err(e) => {
                let r = reason(&e);
                (Err(r.clone()), Err(r))
            }
        };
        let utilization = device.utilization_rates();
        let (util_gpu, util_mem) = match utilization {
            Ok(u) => (Ok(u.gpu), Ok(u.memory)),
            Err(e) => {
                let r = reason(&e);
                (Err(r.clone()), Err(r))
            }
        };
        let retired_pages = fields(
            device,
            &[NVML_FI_DEV_RETIRED_SBE, NVML_FI_DEV_RETIRED_DBE, NVML_FI_DEV_RETIRED_PENDING],
        )
        .and_then(|v| match v.as_slice() {
            [Ok(sbe), Ok(dbe), Ok(pending)] => {
                Ok(RetiredPages { single_bit: *sbe, double_bit: *dbe, pending: *pending > 0 })
            }
            [Err(e), ..] | [_, Err(e), ..] | [_, _, Err(e)] => Err(e.clone()),
            _ => Err("unexpected field count".to_string()),
        });
        let remapped_rows = fields(
            device,
            &[
                NVML_FI_DEV_REMAPPED_COR,
                NVML_FI_DEV_REMAPPED_UNC,
                NVML_FI_DEV_REMAPPED_PENDING,
                NVML_FI_DEV_REMAPPED_FAILURE,
            ],
        )
        .and_then(|v| match v.as_slice() {
            [Ok(cor), Ok(unc), Ok(pending), Ok(failure)] => Ok(RemappedRows {
                corrected: *cor,
                uncorrected: *unc,
                pending: *pending > 0,
                failure: *failure > 0,
            }),
            [Err(e), ..] | [_, Err(e), ..] | [_, _, Err(e), ..] | [_, _, _, Err(e)] => {
                Err(e.clone())
            }
            _ => Err("unexpected field count".to_string()),
        });
        GpuDevice {
            index,
            name: read(device.name()),
            uuid: read(device.uuid()),
            pci_bus_id: read(device.pci_info().map(|p| p.bus_id)),
            utilization_gpu_pct: util_gpu,
            utilization_memory_pct: util_mem,
            memory_total_bytes: total,
            memory_used_bytes: used,
            temperature_c: read(device.temperature(TemperatureSensor::Gpu)),
            power_draw_mw: read(device.power_usage()),
            power_limit_mw: read(device.enforced_power_limit()),
            clock_sm_mhz: read(device.clock_info(Clock::SM)),
            clock_memory_mhz: read(device.clock_info(Clock::Memory)),
            clock_sm_max_mhz: read(device.max_clock_info(Clock::SM)),
            throttle_reasons: read(device.current_throttle_reasons()).map(|reasons| {
                reasons.iter_names().map(|(name, _)| name.to_ascii_lowercase()).collect()
            }),
            ecc: EccCounts {
                enabled: read(device.is_ecc_enabled().map(|m| m.currently_enabled)),
                volatile_corrected: read(
                    device.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile),
                ),
                volatile_uncorrected: read(
                    device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile),
                ),
                aggregate_corrected: read(
                    device.total_ecc_errors(MemoryError::Corrected, EccCounter::Aggregate),
                ),
                aggregate_uncorrected: read(
                    device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Aggregate),
                ),
            },
            retired_pages,
            remapped_rows,
            processes: read(device.running_compute_processes()).map(|list| {
                list.into_iter()
                    .map(|p| GpuProcess {
                        pid: p.pid,
                        used_bytes: match p.used_gpu_memory {
                            nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => Some(b),
                            nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => None,
                        },
                    })
                    .collect()
            }),
        }
    }

    /// Register every device for critical XID events and wait, bounded, for what arrives.
    fn watch_xids(nvml: &Nvml, devices: &[Device<'_>], window: Duration) -> Reading<Vec<XidEvent>> {
        if window.is_zero() {
            return Err("not watched (zero window)".to_string());
        }
        let mut set = nvml.create_event_set().map_err(|e| reason(&e))?;
        let mut registered = 0;
        let mut refused = Vec::new();
        for (index, device) in devices.iter().enumerate() {
            let supported = device
                .supported_event_types()
                .map(|t| t.contains(EventTypes::CRITICAL_XID_ERROR))
                .unwrap_or(false);
            if !supported {
                refused.push(format!("GPU {index}: XID events not supported"));
                continue;
            }
            match device.register_events(EventTypes::CRITICAL_XID_ERROR, set) {
                Ok(s) => {
                    set = s;
                    registered += 1;
                }
                Err(e) => {
                    refused.push(format!("GPU {index}: {}", e.error));
                    // A failed registration consumes the set: start a fresh one.
                    set = nvml.create_event_set().map_err(|e| reason(&e))?;
                }
            }
        }
        if registered == 0 {
            return Err(if refused.is_empty() {
                "no GPU to watch".to_string()
            } else {
                refused.join("; ")
            });
        }
        let deadline = Instant::now() + window;
        let mut events = Vec::new();
        while events.len() < MAX_XID_EVENTS {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ms = u32::try_from(left.as_millis()).unwrap_or(u32::MAX).max(1);
            match set.wait(ms) {
                Ok(event) => events.push(XidEvent {
                    gpu_index: event.device.index().ok(),
                    uuid: event.device.uuid().ok(),
                    xid: match event.event_data {
                        Some(nvml_wrapper::enums::event::XidError::Value(v)) => Some(v),
                        _ => None,
                    },
                }),
                Err(NvmlError::Timeout) => break,
                Err(e) => return Err(format!("waiting for XID events: {}", reason(&e))),
            }
        }
        Ok(events)
    }

    pub(super) fn snapshot(
        lib_path: Option<&Path>,
        xid_window: Duration,
    ) -> Result<GpuSnapshot, String> {
        let lib =
            lib_path.map_or_else(|| "libnvidia-ml.so.1".to_string(), |p| p.display().to_string());
        let init = match lib_path {
            Some(path) => Nvml::builder().lib_path(path.as_os_str()).init(),
            None => Nvml::init(),
        };
        let nvml = init.map_err(|e| init_reason(&e, &lib))?;
        let count =
            nvml.device_count().map_err(|e| format!("NVML device count: {}", reason(&e)))?;
        if count == 0 {
            return Err("NVML sees no NVIDIA GPU".to_string());
        }
        let mut handles = Vec::new();
        let mut devices = Vec::new();
        for index in 0..count {
            match nvml.device_by_index(index) {
                Ok(device) => {
                    devices.push(device_state(index, &device));
                    handles.push(device);
                }
                // A GPU that fell off the bus fails here; the others are still reported.
                Err(e) => devices.push(lost_device(index, reason(&e))),
            }
        }
        let xid_events = watch_xids(&nvml, &handles, xid_window);
        Ok(GpuSnapshot {
            driver_version: read(nvml.sys_driver_version()),
            cuda_driver_version: read(nvml.sys_cuda_driver_version()).map(|v| {
                format!(
                    "{}.{}",
                    nvml_wrapper::cuda_driver_version_major(v),
                    nvml_wrapper::cuda_driver_version_minor(v)
                )
            }),
            devices,
            xid_events,
            xid_window_ms: xid_window.as_millis() as u64,
        })
    }

    fn lost_device(index: u32, why: String) -> GpuDevice {
        fn err<T>(why: &str) -> Reading<T> {
            Err(why.to_string())
        }
        let why = why.as_str();
        GpuDevice {
            index,
            name: err(why),
            uuid: err(why),
            pci_bus_id: err(why),
            utilization_gpu_pct: err(why),
            utilization_memory_pct: err(why),
            memory_total_bytes: err(why),
            memory_used_bytes: err(why),
            temperature_c: err(why),
            power_draw_mw: err(why),
            power_limit_mw: err(why),
            clock_sm_mhz: err(why),
            clock_memory_mhz: err(why),
            clock_sm_max_mhz: err(why),
            throttle_reasons: err(why),
            ecc: EccCounts {
                enabled: err(why),
                volatile_corrected: err(why),
                volatile_uncorrected: err(why),
                aggregate_corrected: err(why),
                aggregate_uncorrected: err(why),
            },
            retired_pages: err(why),
            remapped_rows: err(why),
            processes: err(why),
        }
    }
}

/// Put a reading into `obj[key]`, or `null` with the reason in `unsupported[path]`.
fn put<T: serde::Serialize>(
    obj: &mut Map<String, Value>,
    unsupported: &mut Map<String, Value>,
    key: &str,
    path: &str,
    reading: &Reading<T>,
) {
    match reading {
        Ok(v) => {
            obj.insert(key.into(), json!(v));
        }
        Err(why) => {
            obj.insert(key.into(), Value::Null);
            unsupported.insert(path.into(), json!(why));
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn device_json(d: &GpuDevice) -> Value {
    let mut u = Map::new();
    let mut top = Map::new();
    top.insert("index".into(), json!(d.index));
    put(&mut top, &mut u, "name", "name", &d.name);
    put(&mut top, &mut u, "uuid", "uuid", &d.uuid);
    put(&mut top, &mut u, "pci_bus_id", "pci_bus_id", &d.pci_bus_id);

    let mut util = Map::new();
    put(&mut util, &mut u, "gpu_pct", "utilization.gpu_pct", &d.utilization_gpu_pct);
    put(&mut util, &mut u, "memory_pct", "utilization.memory_pct", &d.utilization_memory_pct);
    top.insert("utilization".into(), Value::Object(util));

    let mut mem = Map::new();
    put(&mut mem, &mut u, "total_bytes", "memory.total_bytes", &d.memory_total_bytes);
    put(&mut mem, &mut u, "used_bytes", "memory.used_bytes", &d.memory_used_bytes);
    if let (Ok(total), Ok(used)) = (&d.memory_total_bytes, &d.memory_used_bytes)
        && *total > 0
    {
        mem.insert(
            "used_fraction".into(),
            json!((*used as f64 / *total as f64 * 10_000.0).round() / 10_000.0),
        );
    }
    top.insert("memory".into(), Value::Object(mem));
    put(&mut top, &mut u, "temperature_c", "temperature_c", &d.temperature_c);

    let mut power = Map::new();
    let watts = |r: &Reading<u32>| r.clone().map(|mw| round2(f64::from(mw) / 1000.0));
    put(&mut power, &mut u, "draw_w", "power.draw_w", &watts(&d.power_draw_mw));
    put(&mut power, &mut u, "limit_w", "power.limit_w", &watts(&d.power_limit_mw));
    top.insert("power".into(), Value::Object(power));

    let mut clocks = Map::new();
    put(&mut clocks, &mut u, "sm_mhz", "clocks.sm_mhz", &d.clock_sm_mhz);
    put(&mut clocks, &mut u, "memory_mhz", "clocks.memory_mhz", &d.clock_memory_mhz);
    put(&mut clocks, &mut u, "sm_max_mhz", "clocks.sm_max_mhz", &d.clock_sm_max_mhz);
    top.insert("clocks".into(), Value::Object(clocks));
    put(&mut top, &mut u, "throttle_reasons", "throttle_reasons", &d.throttle_reasons);

    let mut ecc = Map::new();
    put(&mut ecc, &mut u, "enabled", "ecc.enabled", &d.ecc.enabled);
    let mut volatile = Map::new();
    put(&mut volatile, &mut u, "corrected", "ecc.volatile.corrected", &d.ecc.volatile_corrected);
    put(
        &mut volatile,
        &mut u,
        "uncorrected",
        "ecc.volatile.uncorrected",
        &d.ecc.volatile_uncorrected,
    );
    let mut aggregate = Map::new();
    put(&mut aggregate, &mut u, "corrected", "ecc.aggregate.corrected", &d.ecc.aggregate_corrected);
    put(
        &mut aggregate,
        &mut u,
        "uncorrected",
        "ecc.aggregate.uncorrected",
        &d.ecc.aggregate_uncorrected,
    );
    ecc.insert("volatile".into(), Value::Object(volatile));
    ecc.insert("aggregate".into(), Value::Object(aggregate));
    top.insert("ecc".into(), Value::Object(ecc));

    match &d.retired_pages {
        Ok(p) => top.insert(
            "retired_pages".into(),
            json!({"single_bit": p.single_bit, "double_bit": p.double_bit, "pending": p.pending}),
        ),
        Err(why) => {
            u.insert("retired_pages".into(), json!(why));
            top.insert("retired_pages".into(), Value::Null)
        }
    };
    match &d.remapped_rows {
        Ok(r) => top.insert(
            "remapped_rows".into(),
            json!({"corrected": r.corrected, "uncorrected": r.uncorrected,
                   "pending": r.pending, "failure": r.failure}),
        ),
        Err(why) => {
            u.insert("remapped_rows".into(), json!(why));
            top.insert("remapped_rows".into(), Value::Null)
        }
    };
    let processes = d.processes.clone().map(|list| {
        list.iter().map(|p| json!({"pid": p.pid, "used_bytes": p.used_bytes})).collect::<Vec<_>>()
    });
    put(&mut top, &mut u, "processes", "processes", &processes);
    top.insert("unsupported".into(), Value::Object(u));
    Value::Object(top)
}

/// The `gpus` object of the observation for a snapshot (or the reason there is none).
pub fn gpus_json(snapshot: Result<GpuSnapshot, String>) -> Value {
    let snapshot = match snapshot {
        Ok(s) => s,
        Err(reason) => return unavailable(reason),
    };
    let xid = match &snapshot.xid_events {
        Ok(events) => json!({
            "available": true,
            "window_ms": snapshot.xid_window_ms,
            // NVML reports only events raised after registration: an empty list is not "no XIDs
            // ever". The kernel log (`--log journal:kernel`) holds the earlier ones.
            "scope": "raised during the window only; earlier XIDs are in the kernel log (--log journal:kernel)",
            "events": events.iter().map(|e| json!({
                "gpu_index": e.gpu_index, "uuid": e.uuid, "xid": e.xid,
            })).collect::<Vec<_>>(),
        }),
        Err(reason) => unavailable(reason.clone()),
    };
    json!({
        "available": true,
        "driver_version": snapshot.driver_version.as_ref().ok(),
        "cuda_driver_version": snapshot.cuda_driver_version.as_ref().ok(),
        "count": snapshot.devices.len(),
        "devices": snapshot.devices.iter().map(device_json).collect::<Vec<_>>(),
        "xid_events": xid,
    })
}

/// Snapshot `source` and map it for the observation; the time spent is bounded by the source.
pub fn collect_gpus(source: &dyn GpuSource, xid_window: Duration) -> Value {
    gpus_json(source.snapshot(xid_window))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> FixtureSource {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/signals/gpu")
            .join(name);
        FixtureSource::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn idle_t4_transcribed_from_a_real_dcgm_capture() {
        let g = collect_gpus(&fixture("t4_idle_from_dcgm.json"), DEFAULT_XID_WINDOW);
        assert_eq!(g["available"], true);
        assert_eq!(g["driver_version"], "460.106.00");
        assert!(g["cuda_driver_version"].is_null());
        assert_eq!(g["count"], 1);
        let d = &g["devices"][0];
        assert_eq!(d["name"], "Tesla T4");
        assert_eq!(d["temperature_c"], 25);
        assert_eq!(d["power"]["draw_w"], 8.97);
        assert_eq!(d["power"]["limit_w"], 70.0);
        assert_eq!(d["clocks"]["sm_mhz"], 300);
        assert_eq!(d["memory"]["total_bytes"], 15_109u64 << 20);
        assert_eq!(d["memory"]["used_fraction"], 0.0);
        assert_eq!(d["throttle_reasons"], json!(["gpu_idle"]));
        assert!(d["ecc"]["volatile"]["uncorrected"].is_null());
        assert!(d["unsupported"]["ecc.volatile.uncorrected"].as_str().unwrap().contains("DCGM"));
        assert!(d["retired_pages"].is_null());
        // A fixture that predates the field says so rather than claiming no processes.
        assert_eq!(d["unsupported"]["processes"], "not recorded");
        assert_eq!(g["xid_events"]["events"], json!([]));
    }

    #[test]
    fn degraded_node_maps_ecc_remaps_xids_and_a_lost_gpu() {
        let g = collect_gpus(&fixture("h100_degraded.json"), DEFAULT_XID_WINDOW);
        assert_eq!(g["count"], 2);
        assert_eq!(g["cuda_driver_version"], "12.4");
        let d = &g["devices"][0];
        assert_eq!(d["pci_bus_id"], "00000000:3B:00.0");
        assert_eq!(d["utilization"]["gpu_pct"], 97);
        assert_eq!(d["memory"]["used_fraction"], 0.9542);
        assert_eq!(d["power"]["draw_w"], 698.51);
        assert_eq!(d["ecc"]["enabled"], true);
        assert_eq!(d["ecc"]["volatile"]["uncorrected"], 2);
        assert_eq!(d["ecc"]["aggregate"]["corrected"], 40);
        assert_eq!(d["remapped_rows"]["pending"], true);
        assert_eq!(d["remapped_rows"]["uncorrected"], 1);
        // Hopper remaps rows instead of retiring pages.
        assert!(d["retired_pages"].is_null());
        assert_eq!(d["unsupported"]["retired_pages"], "not supported on this GPU");
        assert_eq!(d["unsupported"].as_object().unwrap().len(), 1, "{}", d["unsupported"]);
        assert_eq!(d["processes"][0]["pid"], 413);
        assert_eq!(d["processes"][0]["used_bytes"], 80_530_636_800u64);
        assert!(d["throttle_reasons"].as_array().unwrap().contains(&json!("hw_slowdown")));
        let lost = &g["devices"][1];
        assert_eq!(lost["index"], 1);
        assert!(lost["name"].is_null());
        assert_eq!(lost["unsupported"]["temperature_c"], "GPU lost (fallen off the bus)");
        let xids: Vec<u64> = g["xid_events"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["xid"].as_u64())
            .collect();
        assert_eq!(xids, [48, 63]);
        assert_eq!(g["xid_events"]["window_ms"], 250);
        assert!(g["xid_events"]["scope"].as_str().unwrap().contains("kernel log"));
    }

    #[test]
    fn a_source_failure_is_unavailable_with_its_reason() {
        let g =
            collect_gpus(&FixtureSource(Err("NVML sees no NVIDIA GPU".into())), DEFAULT_XID_WINDOW);
        assert_eq!(g, json!({"available": false, "reason": "NVML sees no NVIDIA GPU"}));
    }

    #[test]
    fn malformed_fixture_is_an_error() {
        assert!(FixtureSource::from_json("{\"devices\": 3}").is_err());
    }

    #[test]
    fn nvml_from_a_missing_library_degrades_gracefully() {
        let source = NvmlSource { lib_path: Some("/nonexistent/libnvidia-ml.so.1".into()) };
        let g = collect_gpus(&source, DEFAULT_XID_WINDOW);
        assert_eq!(g["available"], false);
        let reason = g["reason"].as_str().unwrap();
        assert!(reason.contains("/nonexistent/libnvidia-ml.so.1"), "{reason}");
        assert!(reason.contains("could not be loaded"), "{reason}");
    }

    #[test]
    fn nvml_on_this_host_reports_gpus_or_why_not() {
        // On a plain machine (and CI) there is no libnvidia-ml: unavailable with a reason. On a
        // GPU machine (OPSG_EXPECT_GPU=1) the real driver must answer with at least one device.
        let g = collect_gpus(&NvmlSource::default(), Duration::from_millis(50));
        if std::env::var("OPSG_EXPECT_GPU").is_ok_and(|v| v == "1") {
            assert_eq!(g["available"], true, "{g}");
            assert!(g["count"].as_u64().unwrap() >= 1);
            let d = &g["devices"][0];
            assert!(d["name"].as_str().is_some_and(|n| !n.is_empty()), "{d}");
            assert!(d["memory"]["total_bytes"].as_u64().unwrap() > 0);
            assert!(d["uuid"].as_str().unwrap().starts_with("GPU-"));
        } else if g["available"] == false {
            assert!(!g["reason"].as_str().unwrap().is_empty());
        } else {
            assert!(g["count"].as_u64().unwrap() >= 1, "{g}");
        }
    }

    #[test]
    fn nvml_path_against_a_stub_driver_library() {
        // Build the stand-in libnvidia-ml (tests/fixtures/signals/gpu/stub_nvml.c) with the C
        // compiler Rust links with, and drive the real NVML code path through it.
        let dir = std::env::temp_dir().join(format!("opsg-stub-nvml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join("libnvidia-ml.so.1");
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/signals/gpu/stub_nvml.c");
        let built = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(&source)
            .status();
        match built {
            Ok(status) if status.success() => {}
            other => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("cc is required under CI=true to build the NVML stub: {other:?}");
                }
                opsg_core::cli::warn(format!(
                    "SKIPPED nvml_path_against_a_stub_driver_library: cannot build the stub with cc ({other:?})"
                ));
                return;
            }
        }
        let source = NvmlSource { lib_path: Some(lib) };
        let g = collect_gpus(&source, Duration::from_millis(200));
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(g["available"], true, "{g}");
        assert_eq!(g["driver_version"], "550.54.15");
        assert_eq!(g["cuda_driver_version"], "12.4");
        assert_eq!(g["count"], 2);
        let d = &g["devices"][0];
        assert_eq!(d["name"], "NVIDIA H100 80GB HBM3 (stub)");
        assert_eq!(d["uuid"], "GPU-00000000-1111-2222-3333-444444444444");
        assert_eq!(d["utilization"]["gpu_pct"], 93);
        assert_eq!(d["memory"]["total_bytes"], 85_520_809_984u64);
        assert_eq!(d["memory"]["used_bytes"], 68_416_647_168u64);
        assert_eq!(d["temperature_c"], 71);
        assert_eq!(d["power"]["draw_w"], 412.35);
        assert_eq!(d["power"]["limit_w"], 700.0);
        assert_eq!(d["throttle_reasons"], json!(["sw_power_cap", "hw_slowdown"]));
        // ECC counters refused by the driver: null, with NVML's reason.
        assert!(d["ecc"]["volatile"]["uncorrected"].is_null());
        assert_eq!(d["unsupported"]["ecc.volatile.uncorrected"], "not supported on this GPU");
        // Entry points the stub lacks (an older driver): null with a reason, never a panic.
        assert!(d["clocks"]["sm_mhz"].is_null());
        assert!(!d["unsupported"]["clocks.sm_mhz"].as_str().unwrap().is_empty());
        assert!(d["remapped_rows"].is_null());
        // The second GPU fell off the bus: reported, not dropped.
        let lost = &g["devices"][1];
        assert_eq!(lost["index"], 1);
        assert_eq!(lost["unsupported"]["name"], "GPU lost (fallen off the bus)");
        // One XID 79 arrived during the watch.
        assert_eq!(g["xid_events"]["available"], true, "{}", g["xid_events"]);
        assert_eq!(
            g["xid_events"]["events"],
            json!([{
                "gpu_index": 0, "uuid": "GPU-00000000-1111-2222-3333-444444444444", "xid": 79
            }])
        );
    }
}
