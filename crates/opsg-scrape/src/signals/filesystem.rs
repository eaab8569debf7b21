//! Filesystem usage (space and inodes) of local mounts, from POSIX `df -P` rather than
//! `statvfs(2)`: the workspace takes no libc binding, and `df` is on every Linux host.
//!
//! `df` is run with `-l` (local filesystems only) because a stat on a hung NFS mount blocks
//! forever, and it runs under a deadline anyway: past it the child is killed and the section
//! says so. Pseudo filesystems (tmpfs, devtmpfs) are left out: a full `/dev/shm` matters, but as
//! memory, which `memory` already shows.

use super::procfile::{run_bounded, unavailable};
use serde_json::{Value, json};
use std::time::Duration;

/// How long `df` may take.
pub const DF_DEADLINE: Duration = Duration::from_secs(3);
/// The most bytes of `df` output read.
const MAX_OUTPUT: u64 = 1024 * 1024;
/// The most filesystems reported.
const MAX_FILESYSTEMS: usize = 256;

/// One line of `df -P`: the device, four numbers and the mount point (which may hold spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DfLine {
    device: String,
    total: u64,
    used: u64,
    avail: u64,
    mount: String,
}

fn parse_df(text: &str) -> Vec<DfLine> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut words = line.split_ascii_whitespace();
            let device = words.next()?.to_string();
            let total = words.next()?.parse().ok()?;
            let used = words.next()?.parse().ok()?;
            let avail = words.next()?.parse().ok()?;
            let _capacity = words.next()?;
            let mount = words.collect::<Vec<_>>().join(" ");
            if mount.is_empty() {
                return None;
            }
            Some(DfLine { device, total, used, avail, mount })
        })
        .collect()
}

fn pseudo(device: &str) -> bool {
    matches!(device, "tmpfs" | "devtmpfs" | "udev" | "none" | "shm" | "run")
}

/// df's own "Use%": used over what non-root users can have (used + available), so blocks
/// reserved for root do not hide a full disk.
fn fraction(used: u64, avail: u64) -> Value {
    let base = used.saturating_add(avail);
    if base == 0 {
        return Value::Null;
    }
    json!((used as f64 / base as f64 * 10_000.0).round() / 10_000.0)
}

/// Join `df -P -k` (space) and `df -P -i` (inodes) output into the `filesystems` list.
pub(crate) fn filesystems_json(space: &str, inodes: Option<&str>) -> Value {
    let inode_lines = inodes.map(parse_df).unwrap_or_default();
    let list: Vec<Value> = parse_df(space)
        .into_iter()
        .filter(|l| !pseudo(&l.device))
        .take(MAX_FILESYSTEMS)
        .map(|l| {
            let mut fs = json!({
                "mount": l.mount,
                "device": l.device,
                "size_bytes": l.total.saturating_mul(1024),
                "used_bytes": l.used.saturating_mul(1024),
                "avail_bytes": l.avail.saturating_mul(1024),
                "used_fraction": fraction(l.used, l.avail),
            });
            if let (Some(i), Some(obj)) =
                (inode_lines.iter().find(|i| i.mount == l.mount), fs.as_object_mut())
            {
                obj.insert("inodes".into(), json!(i.total));
                obj.insert("inodes_used".into(), json!(i.used));
                // Filesystems without fixed inode tables (btrfs) report 0 inodes.
                obj.insert("inodes_used_fraction".into(), fraction(i.used, i.avail));
            }
            fs
        })
        .collect();
    Value::Array(list)
}

/// Run `df` with `args`, bounded by `deadline` and [`MAX_OUTPUT`].
fn run_df(args: &[&str], deadline: Duration) -> Result<String, String> {
    run_bounded("df", args, deadline, MAX_OUTPUT)
        .map(|(out, _)| String::from_utf8_lossy(&out).into_owned())
        .map_err(|e| if e.contains("did not finish") { format!("{e} (a hung mount?)") } else { e })
}

/// Usage of the local filesystems of the live host.
pub fn collect_filesystems() -> Value {
    match run_df(&["-P", "-k", "-l"], DF_DEADLINE) {
        Ok(space) => {
            let inodes = run_df(&["-P", "-i", "-l"], DF_DEADLINE).ok();
            filesystems_json(&space, inodes.as_deref())
        }
        Err(reason) => unavailable(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/signals/df")
            .join(name);
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn captured_df_output_of_this_vm() {
        let fs = filesystems_json(&fixture("df-P-k-l.txt"), Some(&fixture("df-P-i-l.txt")));
        let list = fs.as_array().unwrap();
        // devtmpfs and the tmpfs mounts are left out.
        assert_eq!(list.len(), 1, "{fs}");
        let root = &list[0];
        assert_eq!(root["mount"], "/");
        assert_eq!(root["device"], "/dev/vda");
        assert_eq!(root["size_bytes"], 264_212_084u64 * 1024);
        assert_eq!(root["used_bytes"], 22_980_236u64 * 1024);
        // df printed 25% (it rounds up): 22980236 / (22980236 + 72305652).
        assert_eq!(root["used_fraction"], 0.2412);
        assert_eq!(root["inodes_used"], 435_008);
        assert_eq!(root["inodes_used_fraction"], 0.0259);
    }

    #[test]
    fn mount_points_with_spaces_and_full_disks() {
        let space = "Filesystem 1024-blocks Used Available Capacity Mounted on\n\
                     /dev/nvme0n1p2 1000 970 30 97% /var/lib/my models\n\
                     garbage line\n";
        let fs = filesystems_json(space, None);
        assert_eq!(fs[0]["mount"], "/var/lib/my models");
        assert_eq!(fs[0]["used_fraction"], 0.97);
        assert!(fs[0].get("inodes").is_none());
        assert_eq!(fs.as_array().unwrap().len(), 1);
    }

    #[test]
    fn live_df_on_this_host() {
        let fs = collect_filesystems();
        if fs.get("available") == Some(&json!(false)) {
            panic!("df must run on a Linux host: {fs}");
        }
        let root = fs
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["mount"] == "/")
            .unwrap_or_else(|| panic!("no / in {fs}"));
        assert!(root["size_bytes"].as_u64().unwrap() > 0);
        let used = root["used_fraction"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&used));
    }
}
