//! The exec agent's pid file: which process (boot, pid, start time) runs a
//! service.

use std::fs;
use std::io;
use std::path::Path;

use super::files::write_atomically;

/// Identity of a started service's main process, which is also the id of its
/// process group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PidRecord {
    /// The main process's pid (= its process group id).
    pub pid: i32,
    /// Its start time in clock ticks since boot, from /proc/<pid>/stat.
    pub start_time: u64,
    /// The boot it was started in.
    pub boot_id: String,
}

/// What reading a pid file found.
#[derive(Debug)]
pub(crate) enum PidFileState {
    /// No pid file.
    Absent,
    /// A well-formed record.
    Present(PidRecord),
    /// The file exists but cannot be parsed (the text explains why).
    Corrupt(String),
}

impl PidRecord {
    fn to_text(&self) -> String {
        format!(
            "pid={}\nstart_time={}\nboot_id={}\n",
            self.pid, self.start_time, self.boot_id
        )
    }

    fn parse(text: &str) -> Result<Self, String> {
        let (mut pid, mut start_time, mut boot_id) = (None, None, None);
        for line in text.lines() {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line without '=': {line:?}"))?;
            match key {
                "pid" => pid = Some(value.parse::<i32>().map_err(|e| format!("pid: {e}"))?),
                "start_time" => {
                    start_time = Some(
                        value
                            .parse::<u64>()
                            .map_err(|e| format!("start_time: {e}"))?,
                    )
                }
                "boot_id" => boot_id = Some(value.to_string()),
                other => return Err(format!("unknown key '{other}'")),
            }
        }
        let pid = pid.ok_or("missing pid")?;
        if pid <= 1 {
            return Err(format!("pid {pid} out of range"));
        }
        Ok(PidRecord {
            pid,
            start_time: start_time.ok_or("missing start_time")?,
            boot_id: boot_id.ok_or("missing boot_id")?,
        })
    }
}

/// Reads the pid file at `path`.
pub(crate) fn read(path: &Path) -> io::Result<PidFileState> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(match PidRecord::parse(&text) {
            Ok(record) => PidFileState::Present(record),
            Err(why) => PidFileState::Corrupt(why),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(PidFileState::Absent),
        // Not UTF-8 is corruption too, not an I/O failure.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            Ok(PidFileState::Corrupt("not UTF-8".to_string()))
        }
        Err(e) => Err(e),
    }
}

/// Writes the pid file atomically.
pub(crate) fn write(path: &Path, record: &PidRecord) -> io::Result<()> {
    write_atomically(path, record.to_text().as_bytes())
}

/// Removes the pid file; a missing file is fine.
pub(crate) fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        assert!(matches!(read(&path).unwrap(), PidFileState::Absent));
        let record = PidRecord {
            pid: 4242,
            start_time: 99,
            boot_id: "b".into(),
        };
        write(&path, &record).unwrap();
        match read(&path).unwrap() {
            PidFileState::Present(r) => assert_eq!(r, record),
            other => panic!("{other:?}"),
        }
        for bad in [
            "garbage",
            "pid=1\nstart_time=1\nboot_id=b\n",
            "pid=12\n",
            "pid=x\n",
        ] {
            fs::write(&path, bad).unwrap();
            assert!(
                matches!(read(&path).unwrap(), PidFileState::Corrupt(_)),
                "{bad}"
            );
        }
        fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(read(&path).unwrap(), PidFileState::Corrupt(_)));
        remove(&path).unwrap();
        remove(&path).unwrap();
    }
}
