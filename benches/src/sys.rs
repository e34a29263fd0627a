//! What the runner reads from, and sets in, the operating system: CPU affinity, the open-file
//! limit, a process's CPU time and resident memory, and a description of the machine.

use std::io;
use std::mem;

/// Pins the calling thread, and so every thread it starts afterwards, to `cpu`. Called first
/// thing in `main`, it pins the whole process.
///
/// # Errors
///
/// `sched_setaffinity`'s, e.g. `EINVAL` for a CPU the machine does not have.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("no CPU {cpu}")));
    }
    // SAFETY: `cpu_set_t` is plain bits, for which all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Has the kernel kill this process when the thread that started it exits, so that a server is
/// not left running when its runner is interrupted.
///
/// # Errors
///
/// `prctl`'s.
pub fn exit_with_parent() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } == 1 {
        // The parent was gone before the prctl: no signal will come.
        return Err(io::Error::other("the runner has already exited"));
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard limit, for this process and the ones it
/// starts later: 10,000 connections need 10,000 descriptors on each side. Returns the limit.
///
/// # Errors
///
/// `getrlimit` or `setrlimit`'s.
pub fn raise_open_files() -> io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid rlimit to write into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit, its soft limit no higher than its hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

/// Clock ticks per second, the unit of the CPU times in `/proc/<pid>/stat`.
pub fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf reads a constant; it has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&hz| hz > 0).unwrap_or(100)
}

/// User plus system CPU time of process `pid` so far, in clock ticks (all its threads).
///
/// # Errors
///
/// Reading `/proc/<pid>/stat`, or a line that does not have the fields.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    stat_times(&format!("/proc/{pid}/stat"), 2)
}

/// CPU time of this process so far, in clock ticks, counting the children it has waited for
/// (wrk, once it has exited).
///
/// # Errors
///
/// Reading `/proc/self/stat`, or a line that does not have the fields.
pub fn own_ticks() -> io::Result<u64> {
    stat_times("/proc/self/stat", 4)
}

/// The sum of the first `count` CPU times of the stat file at `path`.
fn stat_times(path: &str, count: usize) -> io::Result<u64> {
    let stat = std::fs::read_to_string(path)?;
    sum_times(&stat, count)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unexpected {path}")))
}

/// The sum of `count` CPU times of a `/proc/<pid>/stat` line, from utime on: utime, stime,
/// cutime, cstime are fields 14 to 17. The command name (field 2) is in parentheses and may
/// hold spaces, so the fields are counted from its closing parenthesis: utime is the 12th
/// after it.
fn sum_times(stat: &str, count: usize) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let times: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(count)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    (times.len() == count).then(|| times.iter().sum())
}

/// Busy clock ticks of the whole machine so far: every CPU's user, nice, system, irq, softirq
/// and steal time, from the first line of `/proc/stat`.
///
/// # Errors
///
/// Reading `/proc/stat`.
pub fn busy_ticks() -> io::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().unwrap_or_default();
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: all but idle (3) and iowait (4).
    Ok(fields.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum())
}

/// Resident memory of process `pid`, in KiB (`VmRSS`).
///
/// # Errors
///
/// Reading `/proc/<pid>/status`, or no `VmRSS` line in it.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    kib_field(&status, "VmRSS:")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc/<pid>/status"))
}

/// The value of a `Name:   1234 kB` line of a `/proc` file, in KiB.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One line about the machine: CPU model, `cores` (read before the caller pinned itself, which
/// hides the others), memory and kernel.
pub fn machine(cores: usize) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = kib_field(&meminfo, "MemTotal:").map_or(0, |kib| (kib + (1 << 19)) >> 20);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cores} cores, {mem_gib} GiB, Linux {}", kernel.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_fields_14_and_15_even_with_spaces_in_the_name() {
        let line = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 3 0 99";
        assert_eq!(sum_times(line, 2), Some(22));
        assert_eq!(sum_times(line, 4), Some(22));
        assert_eq!(sum_times("4242 (x) S 1", 2), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        cpu_ticks(me).unwrap();
        assert!(ticks_per_sec() > 0);
    }
}
