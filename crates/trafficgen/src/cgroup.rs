//! How many cores the process may use, as a container's CPU limit sets it.
//!
//! `std::thread::available_parallelism` rounds a cgroup quota up to whole cores: a pod limited
//! to 500m counts as one core, and a client held to half a core by throttling would look half
//! idle. Here the quota is read as it is, from cgroup v2's `cpu.max` (the smallest on the way
//! from the process's cgroup to the root). Under cgroup v1 there is no answer, and the caller
//! falls back on the standard library's count.

use std::path::Path;

/// The CPU quota of this process's cgroup, in cores, if it has one (cgroup v2 only).
pub(crate) fn quota() -> Option<f64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    quota_in(Path::new("/sys/fs/cgroup"), &cgroups)
}

/// [`quota`] with the cgroup v2 mount at `root` and `/proc/self/cgroup`'s text.
fn quota_in(root: &Path, proc_self_cgroup: &str) -> Option<f64> {
    let own = proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?;
    let mut dir = root.join(own.trim().trim_start_matches('/'));
    let mut smallest: Option<f64> = None;
    loop {
        if let Some(cores) = std::fs::read_to_string(dir.join("cpu.max"))
            .ok()
            .as_deref()
            .and_then(cpu_max)
        {
            smallest = Some(smallest.map_or(cores, |s| s.min(cores)));
        }
        if dir.as_path() == root || !dir.pop() || !dir.starts_with(root) {
            return smallest;
        }
    }
}

/// `cpu.max` ("QUOTA PERIOD", or "max PERIOD" for none) as cores.
fn cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let quota: f64 = fields.next()?.parse().ok()?;
    let period: f64 = fields.next()?.parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_quota_from_the_cgroup_up() {
        let root = tempfile::tempdir().unwrap();
        let pod = root.path().join("kubepods/pod1");
        let container = pod.join("c1");
        std::fs::create_dir_all(&container).unwrap();
        std::fs::write(root.path().join("cpu.max"), "max 100000\n").unwrap();
        std::fs::write(pod.join("cpu.max"), "150000 100000\n").unwrap();
        std::fs::write(container.join("cpu.max"), "max 100000\n").unwrap();
        assert_eq!(quota_in(root.path(), "0::/kubepods/pod1/c1\n"), Some(1.5));
        std::fs::write(container.join("cpu.max"), "50000 100000\n").unwrap();
        assert_eq!(quota_in(root.path(), "0::/kubepods/pod1/c1\n"), Some(0.5));
        // No limit anywhere, and cgroup v1 (no "0::" line): no quota.
        assert_eq!(quota_in(root.path(), "0::/\n"), None);
        assert_eq!(
            quota_in(root.path(), "4:cpu,cpuacct:/\n1:name=systemd:/\n"),
            None
        );
    }

    #[test]
    fn cpu_max_lines() {
        assert_eq!(cpu_max("200000 100000\n"), Some(2.0));
        assert_eq!(cpu_max("max 100000"), None);
        assert_eq!(cpu_max(""), None);
        assert_eq!(cpu_max("0 100000"), None);
    }
}
