//! The heartbeat service of the fault tests, and the analyzer that judges
//! a run from what the service itself wrote.
//!
//! # The service
//!
//! [`command`] is an `exec` service command line: a small `sh` loop that
//! appends one line about every 50 ms to a file shared by all nodes:
//!
//! ```text
//! <node> <CLOCK_REALTIME in ns> <pid of the writing shell> <its start, ns>
//! ```
//!
//! `<node>` is what the process itself observes: the last `-`-separated
//! part of its own cgroup path in `/proc/self/cgroup` (each local node's
//! cgroup is `ha-<tag>-<pid>-node<k>`), re-read before every line; `none`
//! when the process is in no node's cgroup. The pid and the time the shell
//! started tell two copies on one node apart and a restarted copy from the
//! old one (the pid alone does not: with `pid_max` 32768 and a few forks
//! per beat, pids come round again within minutes). Lines are short single
//! `write`s to a file opened with `O_APPEND`, so lines of several writers
//! never mix within a line.
//!
//! # The analysis
//!
//! A *writer* is one process: a `(node, pid, start)` triple. Its *span*
//! runs from its first beat to its last one; the process existed
//! throughout.
//!
//! - **Overlap** (two writers at once): the spans of two writers
//!   intersect, i.e. one writer wrote a line at a time `t` while another
//!   writer had written a line before `t` *and* writes one after `t`. This
//!   is exactly "a line from writer A after the first line of writer B
//!   while B still wrote after that line". A paused (SIGSTOPped) writer
//!   that resumes writing after a new writer started is an overlap too:
//!   it was never fenced.
//! - **Segments**: the beats in time order cut into maximal runs of the
//!   same writer; without overlaps there is one segment per writer.
//! - **Hand-overs**: consecutive writers (ordered by first beat); the gap
//!   is the new writer's first beat minus the old writer's last beat
//!   (negative when they overlap).
//! - **Gaps**: the longest time without any beat, overall or inside a
//!   window `[from, to]` (the window's edges count as beats for the
//!   clipping, so a window that starts or ends in silence reports it), for
//!   all writers or for the writers on one node.
//!
//! Times are nanoseconds of `CLOCK_REALTIME` (the test process's
//! [`std::time::SystemTime`] and the service's `date +%s%N` read the same
//! clock).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The shell loop that writes heartbeats to `file` (see the module docs).
/// `file` must not contain a single quote.
pub fn command(file: &Path) -> String {
    format!(
        "f='{}'; s=$(date +%s%N); while :; do n=none; while read -r l; do case $l in */ha-*-node*) \
         n=${{l##*-}};; esac; done </proc/self/cgroup; echo \"$n $(date +%s%N) $$ $s\" >>\"$f\"; \
         sleep 0.05; done",
        file.display()
    )
}

/// Nanoseconds since the epoch of `t` (0 before the epoch).
pub fn ns_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Now, in nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    ns_of(SystemTime::now())
}

/// A duration between two nanosecond times (0 if `to < from`).
pub fn span(from: u64, to: u64) -> Duration {
    Duration::from_nanos(to.saturating_sub(from))
}

/// The process that wrote a beat.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Writer {
    /// The node it observed itself on (`none`: no node cgroup).
    pub node: String,
    /// The writing shell's pid.
    pub pid: u32,
    /// When the writing shell started (ns since the epoch; 0 for lines
    /// without it).
    pub started: u64,
}

impl std::fmt::Display for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/pid {}", self.node, self.pid)?;
        if self.started != 0 {
            // Enough of the start time to tell pid reuses apart.
            let ms = self.started / 1_000_000;
            write!(f, "@{}.{:03}", ms / 1000 % 100_000, ms % 1000)?;
        }
        Ok(())
    }
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// Who wrote it.
    pub writer: Writer,
    /// When (ns since the epoch).
    pub at: u64,
}

/// A writer's whole life as the file shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The writer.
    pub writer: Writer,
    /// Its first beat.
    pub first: u64,
    /// Its last beat.
    pub last: u64,
    /// How many beats it wrote.
    pub beats: usize,
}

/// A maximal run of beats of one writer, in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The writer.
    pub writer: Writer,
    /// First beat of the run.
    pub first: u64,
    /// Last beat of the run.
    pub last: u64,
}

/// Two writers alive at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The writer that started first.
    pub earlier: Writer,
    /// The writer that started while `earlier` still wrote.
    pub later: Writer,
    /// When the overlap began (`later`'s first beat).
    pub from: u64,
    /// When it ended (the first of the two last beats).
    pub to: u64,
}

/// One writer followed by the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// The old writer.
    pub from: Writer,
    /// The new writer.
    pub to: Writer,
    /// The old writer's last beat.
    pub old_last: u64,
    /// The new writer's first beat.
    pub new_first: u64,
}

impl Handover {
    /// Whether the old writer had stopped before the new one started.
    pub fn clean(&self) -> bool {
        self.old_last < self.new_first
    }

    /// The gap between them (zero when they overlapped).
    pub fn gap(&self) -> Duration {
        span(self.old_last, self.new_first)
    }
}

/// A stretch without beats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Start (a beat or the window's start).
    pub from: u64,
    /// End (a beat or the window's end).
    pub to: u64,
}

impl Gap {
    /// Its length.
    pub fn len(&self) -> Duration {
        span(self.from, self.to)
    }

    /// Whether it has no length.
    pub fn is_empty(&self) -> bool {
        self.to <= self.from
    }
}

/// Everything read from one heartbeat file. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Heartbeats {
    beats: Vec<Beat>,
    malformed: Vec<String>,
}

impl Heartbeats {
    /// Parses the file's text. Lines that are not `<node> <ns> <pid>
    /// [<start ns>]` are kept aside as malformed.
    pub fn parse(text: &str) -> Self {
        let mut beats = Vec::new();
        let mut malformed = Vec::new();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let fields: Vec<&str> = parts.by_ref().take(5).collect();
            let parsed = match fields.as_slice() {
                [node, at, pid, rest @ ..] if rest.len() <= 1 => {
                    let started = match rest.first() {
                        Some(s) => s.parse::<u64>().ok(),
                        None => Some(0),
                    };
                    match (at.parse::<u64>(), pid.parse::<u32>(), started) {
                        (Ok(at), Ok(pid), Some(started)) => Some(Beat {
                            writer: Writer {
                                node: node.to_string(),
                                pid,
                                started,
                            },
                            at,
                        }),
                        _ => None,
                    }
                }
                _ => None,
            };
            match parsed {
                Some(b) => beats.push(b),
                None if line.trim().is_empty() => {}
                None => malformed.push(line.to_string()),
            }
        }
        // Stable: equal times keep the file's order.
        beats.sort_by_key(|b| b.at);
        Heartbeats { beats, malformed }
    }

    /// Reads and parses `path`; a missing file has no beats.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Every beat, in time order.
    pub fn beats(&self) -> &[Beat] {
        &self.beats
    }

    /// Lines that were not beats.
    pub fn malformed(&self) -> &[String] {
        &self.malformed
    }

    /// The last beat.
    pub fn last(&self) -> Option<&Beat> {
        self.beats.last()
    }

    /// Each writer's span, ordered by first beat.
    pub fn spans(&self) -> Vec<Span> {
        let mut by_writer: BTreeMap<&Writer, Span> = BTreeMap::new();
        for b in &self.beats {
            by_writer
                .entry(&b.writer)
                .and_modify(|s| {
                    s.last = b.at;
                    s.beats += 1;
                })
                .or_insert_with(|| Span {
                    writer: b.writer.clone(),
                    first: b.at,
                    last: b.at,
                    beats: 1,
                });
        }
        let mut spans: Vec<Span> = by_writer.into_values().collect();
        spans.sort_by_key(|s| (s.first, s.last));
        spans
    }

    /// The maximal runs of one writer, in time order.
    pub fn segments(&self) -> Vec<Segment> {
        let mut out: Vec<Segment> = Vec::new();
        for b in &self.beats {
            match out.last_mut() {
                Some(s) if s.writer == b.writer => s.last = b.at,
                _ => out.push(Segment {
                    writer: b.writer.clone(),
                    first: b.at,
                    last: b.at,
                }),
            }
        }
        out
    }

    /// Every pair of writers whose spans intersect.
    pub fn overlaps(&self) -> Vec<Overlap> {
        let spans = self.spans();
        let mut out = Vec::new();
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                // Ordered by first beat: b starts at or after a.
                if b.first <= a.last {
                    out.push(Overlap {
                        earlier: a.writer.clone(),
                        later: b.writer.clone(),
                        from: b.first,
                        to: a.last.min(b.last),
                    });
                }
            }
        }
        out
    }

    /// Consecutive writers (by first beat) and the gap between them.
    pub fn handovers(&self) -> Vec<Handover> {
        self.spans()
            .windows(2)
            .map(|w| Handover {
                from: w[0].writer.clone(),
                to: w[1].writer.clone(),
                old_last: w[0].last,
                new_first: w[1].first,
            })
            .collect()
    }

    /// The writers with a beat at or after `since`.
    pub fn writers_since(&self, since: u64) -> Vec<Writer> {
        let mut out: Vec<Writer> = self
            .beats
            .iter()
            .filter(|b| b.at >= since)
            .map(|b| b.writer.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The writers with a beat in `[from, to]`.
    pub fn writers_between(&self, from: u64, to: u64) -> Vec<Writer> {
        let mut out: Vec<Writer> = self
            .beats
            .iter()
            .filter(|b| b.at >= from && b.at <= to)
            .map(|b| b.writer.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The first beat at or after `since` of a writer on a node other
    /// than `node`.
    pub fn first_elsewhere(&self, since: u64, node: &str) -> Option<&Beat> {
        self.beats
            .iter()
            .find(|b| b.at >= since && b.writer.node != node)
    }

    /// The last beat written on `node` (any writer).
    pub fn last_on(&self, node: &str) -> Option<&Beat> {
        self.beats.iter().rev().find(|b| b.writer.node == node)
    }

    /// The longest stretch without a beat between the first and the last
    /// beat (None with fewer than two beats).
    pub fn longest_gap(&self) -> Option<Gap> {
        self.beats
            .windows(2)
            .map(|w| Gap {
                from: w[0].at,
                to: w[1].at,
            })
            .max_by_key(|g| g.to - g.from)
    }

    /// The longest stretch inside `[from, to]` without a beat, of any
    /// writer (`node` None) or of writers on `node`. The window's edges
    /// clip the gaps around them: a window without beats is one gap.
    pub fn longest_gap_in(&self, from: u64, to: u64, node: Option<&str>) -> Gap {
        let mut previous = from;
        let mut longest = Gap { from, to: from };
        for b in &self.beats {
            if node.is_some_and(|n| n != b.writer.node) {
                continue;
            }
            if b.at <= from {
                continue;
            }
            if b.at >= to {
                break;
            }
            if b.at - previous > longest.to - longest.from {
                longest = Gap {
                    from: previous,
                    to: b.at,
                };
            }
            previous = b.at;
        }
        if to > previous && to - previous > longest.to - longest.from {
            longest = Gap { from: previous, to };
        }
        longest
    }

    /// A multi-line description for assertion messages: the segments
    /// (times relative to `origin`, in seconds), overlaps, the longest
    /// gap and malformed lines.
    pub fn describe(&self, origin: u64) -> String {
        let rel = |t: u64| {
            if t >= origin {
                format!("+{:.3}s", span(origin, t).as_secs_f64())
            } else {
                format!("-{:.3}s", span(t, origin).as_secs_f64())
            }
        };
        let mut out = format!("{} beats; segments:\n", self.beats.len());
        for s in self.segments() {
            out.push_str(&format!(
                "  {} {} .. {}\n",
                s.writer,
                rel(s.first),
                rel(s.last)
            ));
        }
        for o in self.overlaps() {
            out.push_str(&format!(
                "  OVERLAP {} and {} from {} to {}\n",
                o.earlier,
                o.later,
                rel(o.from),
                rel(o.to)
            ));
        }
        if let Some(g) = self.longest_gap() {
            out.push_str(&format!(
                "  longest gap {:?} ({} .. {})\n",
                g.len(),
                rel(g.from),
                rel(g.to)
            ));
        }
        if !self.malformed.is_empty() {
            out.push_str(&format!("  {} malformed lines\n", self.malformed.len()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn file(lines: &[(&str, u64, u32)]) -> Heartbeats {
        let text: String = lines
            .iter()
            .map(|(n, t, p)| format!("{n} {t} {p}\n"))
            .collect();
        Heartbeats::parse(&text)
    }

    /// `count` beats of `node`/`pid` every 50 ms from `from` ms.
    fn run(node: &'static str, pid: u32, from: u64, count: u64) -> Vec<(&'static str, u64, u32)> {
        (0..count)
            .map(|k| (node, (from + 50 * k) * MS, pid))
            .collect()
    }

    #[test]
    fn a_clean_failover_has_one_handover_and_no_overlap() {
        let mut lines = run("node1", 10, 1000, 20); // 1000..1950
        lines.extend(run("node2", 20, 4000, 10)); // 4000..4450
        let hb = file(&lines);
        assert!(hb.overlaps().is_empty());
        let spans = hb.spans();
        assert_eq!(spans.len(), 2);
        assert_eq!((spans[0].first, spans[0].last), (1000 * MS, 1950 * MS));
        let h = hb.handovers();
        assert_eq!(h.len(), 1);
        assert!(h[0].clean());
        assert_eq!(h[0].gap(), Duration::from_millis(2050));
        let g = hb.longest_gap().unwrap();
        assert_eq!((g.from, g.to), (1950 * MS, 4000 * MS));
        assert_eq!(hb.segments().len(), 2);
    }

    #[test]
    fn interleaved_writers_overlap() {
        let mut lines = run("node1", 10, 1000, 40); // 1000..2950
        lines.extend(run("node2", 20, 2000, 10)); // 2000..2450
        let hb = file(&lines);
        let o = hb.overlaps();
        assert_eq!(o.len(), 1, "{o:?}");
        assert_eq!(o[0].earlier.node, "node1");
        assert_eq!(o[0].later.node, "node2");
        assert_eq!((o[0].from, o[0].to), (2000 * MS, 2450 * MS));
        assert!(!hb.handovers()[0].clean());
        assert!(hb.segments().len() > 2);
        assert!(hb.describe(0).contains("OVERLAP"));
    }

    #[test]
    fn a_paused_writer_that_resumes_after_the_new_one_started_overlaps() {
        // node1 writes, is silent for 5 s (SIGSTOP), node2 takes over and
        // stops, then node1's same process writes again.
        let mut lines = run("node1", 10, 0, 10);
        lines.extend(run("node2", 20, 2000, 10));
        lines.extend(run("node1", 10, 5000, 2));
        let hb = file(&lines);
        assert_eq!(hb.overlaps().len(), 1);
    }

    #[test]
    fn moving_back_to_a_node_with_a_new_process_is_no_overlap() {
        let mut lines = run("node1", 10, 0, 10);
        lines.extend(run("node2", 20, 1000, 10));
        lines.extend(run("node1", 30, 2000, 10));
        let hb = file(&lines);
        assert!(hb.overlaps().is_empty());
        assert_eq!(hb.handovers().len(), 2);
        assert!(hb.handovers().iter().all(Handover::clean));
    }

    #[test]
    fn a_reused_pid_is_another_writer() {
        // pid 10 on node1 ends, and much later another process that got
        // pid 10 again runs there: two writers, one after the other.
        let text = format!(
            "node1 {} 10 5\nnode1 {} 10 5\nnode2 {} 20 6\nnode1 {} 10 7\nnode1 {} 10 7\n",
            100 * MS,
            150 * MS,
            300 * MS,
            900 * MS,
            950 * MS
        );
        let hb = Heartbeats::parse(&text);
        assert!(hb.malformed().is_empty());
        assert_eq!(hb.spans().len(), 3);
        assert!(hb.overlaps().is_empty(), "{:?}", hb.overlaps());
        assert_eq!(hb.spans()[2].writer.started, 7);
        assert!(hb.spans()[2]
            .writer
            .to_string()
            .starts_with("node1/pid 10@"));
        // Without the start time the two lives would merge and overlap.
        let old = "node1 100 10\nnode2 300 20\nnode1 900 10\n";
        assert_eq!(Heartbeats::parse(old).overlaps().len(), 1);
    }

    #[test]
    fn two_copies_on_one_node_overlap() {
        let mut lines = run("node1", 10, 0, 10);
        lines.extend(run("node1", 11, 100, 10));
        assert_eq!(file(&lines).overlaps().len(), 1);
    }

    #[test]
    fn gaps_inside_a_window_are_clipped_at_its_edges() {
        let mut lines = run("node1", 10, 0, 10); // 0..450
        lines.extend(run("node2", 20, 3000, 10)); // 3000..3450
        let hb = file(&lines);
        // Window inside the silence: one gap, the whole window.
        let g = hb.longest_gap_in(1000 * MS, 2000 * MS, None);
        assert_eq!(g.len(), Duration::from_millis(1000));
        // Window around the hand-over: from the last beat to the first.
        let g = hb.longest_gap_in(200 * MS, 3200 * MS, None);
        assert_eq!((g.from, g.to), (450 * MS, 3000 * MS));
        // Per node: node1 falls silent at 450 until the window's end.
        let g = hb.longest_gap_in(0, 3400 * MS, Some("node1"));
        assert_eq!((g.from, g.to), (450 * MS, 3400 * MS));
        // A healthy stretch.
        let g = hb.longest_gap_in(3000 * MS, 3400 * MS, None);
        assert_eq!(g.len(), Duration::from_millis(50));
        // Silence at the window's start counts.
        let g = hb.longest_gap_in(2500 * MS, 3100 * MS, Some("node2"));
        assert_eq!((g.from, g.to), (2500 * MS, 3000 * MS));
    }

    #[test]
    fn malformed_lines_are_kept_aside_and_order_is_by_time() {
        let hb = Heartbeats::parse(
            "node1 200 7\ngarbage\nnode2 100 8\nnode1 x 7\nnode1 300 7 1 2\nnode1 300 7 y\n\n",
        );
        assert_eq!(hb.malformed().len(), 4);
        assert_eq!(hb.beats()[0].writer.node, "node2");
        assert_eq!(hb.writers_since(150).len(), 1);
        assert_eq!(hb.writers_between(0, 1000).len(), 2);
        assert_eq!(hb.first_elsewhere(0, "node2").map(|b| b.at), Some(200));
        assert_eq!(hb.last_on("node2").map(|b| b.at), Some(100));
    }

    #[test]
    fn an_empty_file_has_no_gap_but_a_silent_window() {
        let hb = Heartbeats::parse("");
        assert!(hb.longest_gap().is_none());
        assert!(hb.spans().is_empty());
        assert_eq!(
            hb.longest_gap_in(0, 1000 * MS, None).len(),
            Duration::from_secs(1)
        );
        assert!(Heartbeats::read(Path::new("/nonexistent/hb.log"))
            .unwrap()
            .beats()
            .is_empty());
    }

    #[test]
    fn the_command_writes_parsable_beats_naming_no_node_outside_a_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hb.log");
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command(&path))
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let _ = child.kill();
        let _ = child.wait();
        let hb = Heartbeats::read(&path).unwrap();
        assert!(hb.malformed().is_empty(), "{:?}", hb.malformed());
        assert!(hb.beats().len() >= 3, "{}", hb.describe(0));
        let spans = hb.spans();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].writer.node, "none");
        assert_eq!(spans[0].writer.pid, child.id());
        assert!(spans[0].writer.started > 0 && spans[0].writer.started <= spans[0].first);
        let now = now_ns();
        assert!(spans[0].last <= now && now - spans[0].last < 10_000 * MS);
    }
}
