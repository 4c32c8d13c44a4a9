//! What `Describe` tells a manager about this host: its name, hypervisor,
//! underlay, version, namespace prefix, CPUs and memory. The parsers of the
//! kernel's files are pure and unit-tested; [`host_facts`] reads them.

/// The host's CPUs and memory, as the kernel reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub cpus: u32,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
}

/// Reads `/sys/devices/system/cpu/online` and `/proc/meminfo`; a file that
/// cannot be read leaves its fields 0 (the manager shows what it got).
pub fn host_facts() -> HostFacts {
    let cpus = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|t| parse_cpu_list(&t))
        .unwrap_or(0);
    let (total, available) = std::fs::read_to_string("/proc/meminfo")
        .map(|t| parse_meminfo(&t))
        .unwrap_or_default();
    HostFacts {
        cpus,
        memory_total_bytes: total,
        memory_available_bytes: available,
    }
}

/// The host's name: its kernel hostname, trimmed.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Counts the CPUs of a kernel CPU list (`0-3,6,8-9`); None when malformed.
pub fn parse_cpu_list(text: &str) -> Option<u32> {
    let mut count = 0u32;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                count += b.checked_sub(a)? + 1;
            }
            None => {
                part.parse::<u32>().ok()?;
                count += 1;
            }
        }
    }
    Some(count)
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes (the file
/// counts kibibytes); a missing line is 0.
pub fn parse_meminfo(text: &str) -> (u64, u64) {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib.saturating_mul(1024))
    };
    (field("MemTotal"), field("MemAvailable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_count_ranges_and_single_cpus() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn meminfo_gives_total_and_available_in_bytes() {
        let text = "MemTotal:        4012340 kB\nMemFree:          123456 kB\n\
                    MemAvailable:    3000000 kB\nBuffers: 1 kB\n";
        assert_eq!(parse_meminfo(text), (4012340 * 1024, 3000000 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 10 kB\n"), (10240, 0));
    }
}
