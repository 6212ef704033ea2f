//! Reading process facts from /proc: state, process group, start time, boot id.
//!
//! A pid alone does not identify a process (pids are recycled), so the exec
//! agent records `(boot id, pid, start time)` and compares all three.

use std::fs;
use std::io;

/// The fields of `/proc/<pid>/stat` the agents need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// One-letter state (`R`, `S`, `D`, `Z`, `T`, ...).
    pub state: char,
    /// Process group id.
    pub pgrp: i32,
    /// Start time in clock ticks since boot (field 22).
    pub start_time: u64,
}

impl ProcStat {
    /// A zombie or dead task has exited; it only waits to be reaped.
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the contents of a `/proc/<pid>/stat` file. The command name (field
/// 2) may contain spaces and parentheses, so fields are counted from the last
/// `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 (state); field N is fields[N - 3].
    let state = fields.first()?.chars().next()?;
    let pgrp = fields.get(5 - 3)?.parse().ok()?;
    let start_time = fields.get(22 - 3)?.parse().ok()?;
    Some(ProcStat {
        state,
        pgrp,
        start_time,
    })
}

/// Reads `/proc/<pid>/stat`; `Ok(None)` when no such process exists.
pub(crate) fn read_stat(pid: i32) -> io::Result<Option<ProcStat>> {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => parse_stat(&text).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unparsable /proc/{pid}/stat"),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // ESRCH: the process vanished between open and read.
        Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The kernel's id for the current boot; pid files from an earlier boot are
/// stale whatever their pid and start time say.
pub(crate) fn boot_id() -> io::Result<String> {
    Ok(fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_string())
}

/// The live (not exited) processes for which `keep(pid, stat)` holds.
/// Processes come and go while /proc is scanned; a vanished one is skipped.
pub fn live_processes(mut keep: impl FnMut(i32, &ProcStat) -> bool) -> io::Result<Vec<i32>> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(Some(stat)) = read_stat(pid) {
            if !stat.has_exited() && keep(pid, &stat) {
                found.push(pid);
            }
        }
    }
    Ok(found)
}

/// The live (not exited) processes whose process group is `pgid`.
pub(crate) fn live_group_members(pgid: i32) -> io::Result<Vec<i32>> {
    live_processes(|_, stat| stat.pgrp == pgid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_odd_command_name() {
        let line = "1234 (we ird) (name)) S 1 1230 1230 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10 18446744073709551615";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.pgrp, 1230);
        assert_eq!(stat.start_time, 98765);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn reads_own_process_and_reports_missing_ones() {
        let me = std::process::id() as i32;
        let stat = read_stat(me).unwrap().unwrap();
        assert!(!stat.has_exited());
        assert_eq!(read_stat(i32::MAX).unwrap(), None);
        assert!(!boot_id().unwrap().is_empty());
    }
}
