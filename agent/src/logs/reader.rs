//! Reading a container's log as `kubectl logs` asks for it: the rotated files first (oldest
//! first), then the current one; `tailLines`, `sinceSeconds`/`sinceTime`, `timestamps` and
//! `limitBytes` applied to the records; with `follow`, new records as the runtime writes
//! them, across rotations, until the container stops or the reader is gone.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;

use super::format::{self, LogRecord};

/// What to read of a log (the query of `/containerLogs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only the last N records.
    pub tail_lines: Option<u64>,
    /// Only records at or after this time.
    pub since: Option<Timestamp>,
    /// Each line prefixed with its timestamp and a space.
    pub timestamps: bool,
    /// At most this many bytes of output.
    pub limit_bytes: Option<u64>,
    /// Keep reading as the log grows.
    pub follow: bool,
}

/// How often a followed log is checked for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Where the output goes: `false` from [`LogSink::write`] stops the reading (the client is
/// gone); [`LogSink::keep_following`] says whether to wait for more (the container runs).
pub trait LogSink {
    fn write(&mut self, bytes: &[u8]) -> bool;
    fn keep_following(&mut self) -> bool;
}

/// The files of a log, oldest first: rotated ones (`<current>.<suffix>`, uncompressed) and
/// the current one if it exists.
pub fn log_files(current: &Path) -> std::io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (current.parent(), current.file_name()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut rotated: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                let extension = Path::new(n).extension().unwrap_or_default();
                n.starts_with(&prefix)
                    && !extension.eq_ignore_ascii_case("gz")
                    && !extension.eq_ignore_ascii_case("tmp")
            })
            .map(|n| dir.join(n))
            .collect(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    // Rotation suffixes are timestamps of a fixed width: by name is by age.
    rotated.sort();
    if current.exists() {
        rotated.push(current.to_owned());
    }
    Ok(rotated)
}

/// Turns records into output: the `since` filter, timestamps and the byte limit.
#[derive(Debug)]
struct Formatter {
    since: Option<Timestamp>,
    timestamps: bool,
    remaining: Option<u64>,
    line: Vec<u8>,
}

impl Formatter {
    fn new(options: &LogOptions) -> Self {
        Formatter {
            since: options.since,
            timestamps: options.timestamps,
            remaining: options.limit_bytes,
            line: Vec::new(),
        }
    }

    fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Writes one raw line; `false` once the output must stop.
    fn emit(&mut self, raw: &[u8], sink: &mut dyn LogSink) -> bool {
        let record: LogRecord<'_> = match format::parse(raw) {
            Ok(record) => record,
            Err(err) => {
                tracing::debug!(%err, "skipping a malformed log line");
                return true;
            }
        };
        if self.since.is_some_and(|since| record.time < since) {
            return true;
        }
        self.line.clear();
        if self.timestamps {
            self.line.extend_from_slice(record.timestamp.as_bytes());
            self.line.push(b' ');
        }
        self.line.extend_from_slice(record.content);
        if !record.partial {
            self.line.push(b'\n');
        }
        let mut out: &[u8] = &self.line;
        if let Some(remaining) = &mut self.remaining {
            let take = usize::try_from(*remaining)
                .unwrap_or(usize::MAX)
                .min(out.len());
            out = &out[..take];
            *remaining -= take as u64;
        }
        (out.is_empty() || sink.write(out)) && !self.exhausted()
    }
}

/// Reads whole lines of `reader` until its end; a last line without its newline is left in
/// `pending` (the runtime is still writing it).
fn read_lines(
    reader: &mut impl BufRead,
    pending: &mut Vec<u8>,
    each: &mut dyn FnMut(&[u8]) -> bool,
) -> std::io::Result<bool> {
    loop {
        let read = reader.read_until(b'\n', pending)?;
        if read == 0 || pending.last() != Some(&b'\n') {
            return Ok(true);
        }
        let go_on = each(pending);
        pending.clear();
        if !go_on {
            return Ok(false);
        }
    }
}

/// Reads the log whose current file is `current` into `sink`.
pub fn read_log(
    current: &Path,
    options: &LogOptions,
    sink: &mut dyn LogSink,
) -> std::io::Result<()> {
    let mut formatter = Formatter::new(options);
    if formatter.exhausted() {
        return Ok(());
    }
    let files = log_files(current)?;
    let mut tail: Option<VecDeque<Vec<u8>>> = options
        .tail_lines
        .map(|n| VecDeque::with_capacity(usize::try_from(n.min(1 << 16)).unwrap_or_default()));
    let mut pending = Vec::new();
    let mut open_current: Option<BufReader<File>> = None;
    for path in &files {
        let file = match File::open(path) {
            Ok(file) => file,
            // Rotated away (and removed) since the listing.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        let mut reader = BufReader::new(file);
        pending.clear();
        let go_on = read_lines(&mut reader, &mut pending, &mut |raw| match &mut tail {
            Some(tail) => {
                let limit =
                    usize::try_from(options.tail_lines.unwrap_or_default()).unwrap_or(usize::MAX);
                if limit > 0 {
                    if tail.len() == limit {
                        tail.pop_front();
                    }
                    tail.push_back(raw.to_vec());
                }
                true
            }
            None => formatter.emit(raw, sink),
        })?;
        if !go_on {
            return Ok(());
        }
        if path == current {
            open_current = Some(reader);
        }
    }
    for raw in tail.into_iter().flatten() {
        if !formatter.emit(&raw, sink) {
            return Ok(());
        }
    }
    if options.follow {
        follow(current, open_current, pending, &mut formatter, sink)?;
    }
    Ok(())
}

fn inode(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Waits for records appended to `current` (reopened when the runtime rotates it) until
/// the sink stops following.
fn follow(
    current: &Path,
    mut reader: Option<BufReader<File>>,
    mut pending: Vec<u8>,
    formatter: &mut Formatter,
    sink: &mut dyn LogSink,
) -> std::io::Result<()> {
    let mut last_inode = reader
        .as_ref()
        .and_then(|r| r.get_ref().metadata().ok())
        .map(|m| (m.dev(), m.ino()));
    let mut quiet_rounds = 0u32;
    loop {
        let mut wrote = false;
        if let Some(reader) = &mut reader {
            let go_on = read_lines(reader, &mut pending, &mut |raw| {
                wrote = true;
                formatter.emit(raw, sink)
            })?;
            if !go_on {
                return Ok(());
            }
        }
        let now = inode(current);
        if now.is_some() && now != last_inode {
            // Rotated (or created): what is left of the old file was read above; the new one
            // is read from its start.
            match File::open(current) {
                Ok(mut file) => {
                    file.seek(SeekFrom::Start(0))?;
                    reader = Some(BufReader::new(file));
                    pending.clear();
                    last_inode = now;
                    continue;
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        if wrote {
            quiet_rounds = 0;
            continue;
        }
        quiet_rounds += 1;
        // Asking whether the container still runs costs a runtime call: every 5 rounds.
        if quiet_rounds.is_multiple_of(5) && !sink.keep_following() {
            // One more read: what was written just before the container stopped.
            if let Some(reader) = &mut reader {
                read_lines(reader, &mut pending, &mut |raw| formatter.emit(raw, sink))?;
            }
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[derive(Default)]
    struct Collect {
        out: Vec<u8>,
        follow_rounds: u32,
    }

    impl LogSink for Collect {
        fn write(&mut self, bytes: &[u8]) -> bool {
            self.out.extend_from_slice(bytes);
            true
        }
        fn keep_following(&mut self) -> bool {
            self.follow_rounds = self.follow_rounds.saturating_sub(1);
            self.follow_rounds > 0
        }
    }

    fn write_log(dir: &Path, name: &str, records: &[(&str, &str, &str)]) -> PathBuf {
        let path = dir.join(name);
        let mut file = File::create(&path).unwrap();
        for (ts, tag, content) in records {
            writeln!(file, "{ts} stdout {tag} {content}").unwrap();
        }
        path
    }

    fn read(current: &Path, options: &LogOptions) -> String {
        let mut sink = Collect::default();
        read_log(current, options, &mut sink).unwrap();
        String::from_utf8(sink.out).unwrap()
    }

    fn fixture() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        write_log(
            dir.path(),
            "0.log.20240101-000000.000000000",
            &[
                ("2024-01-01T00:00:01Z", "F", "one"),
                ("2024-01-01T00:00:02Z", "P", "tw"),
            ],
        );
        write_log(
            dir.path(),
            "0.log.20240101-000010.000000000",
            &[
                ("2024-01-01T00:00:03Z", "F", "o"),
                ("2024-01-01T00:00:04Z", "F", "three"),
            ],
        );
        // Not part of this log: another attempt, a compressed file.
        write_log(dir.path(), "1.log", &[("2024-01-01T00:00:00Z", "F", "x")]);
        std::fs::write(dir.path().join("0.log.20231231-000000.gz"), b"\x1f\x8b").unwrap();
        let current = write_log(
            dir.path(),
            "0.log",
            &[
                ("2024-01-01T00:00:05Z", "F", "four"),
                ("2024-01-01T00:00:06.5Z", "F", "five"),
            ],
        );
        (dir, current)
    }

    #[test]
    fn reads_rotated_files_then_the_current_one() {
        let (_dir, current) = fixture();
        assert_eq!(
            read(&current, &LogOptions::default()),
            "one\ntwo\nthree\nfour\nfive\n"
        );
        let files = log_files(&current).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "0.log.20240101-000000.000000000",
                "0.log.20240101-000010.000000000",
                "0.log"
            ]
        );
    }

    #[test]
    fn tail_counts_records_across_files() {
        let (_dir, current) = fixture();
        let tail = |n| LogOptions {
            tail_lines: Some(n),
            ..LogOptions::default()
        };
        assert_eq!(read(&current, &tail(2)), "four\nfive\n");
        assert_eq!(read(&current, &tail(3)), "three\nfour\nfive\n");
        assert_eq!(read(&current, &tail(0)), "");
        assert_eq!(read(&current, &tail(100)), "one\ntwo\nthree\nfour\nfive\n");
    }

    #[test]
    fn since_timestamps_and_limit_bytes() {
        let (_dir, current) = fixture();
        let since = LogOptions {
            since: Some("2024-01-01T00:00:04Z".parse().unwrap()),
            timestamps: true,
            ..LogOptions::default()
        };
        assert_eq!(
            read(&current, &since),
            "2024-01-01T00:00:04Z three\n2024-01-01T00:00:05Z four\n2024-01-01T00:00:06.5Z five\n"
        );
        let limited = LogOptions {
            limit_bytes: Some(6),
            ..LogOptions::default()
        };
        assert_eq!(read(&current, &limited), "one\ntw");
        let nothing = LogOptions {
            limit_bytes: Some(0),
            ..LogOptions::default()
        };
        assert_eq!(read(&current, &nothing), "");
    }

    #[test]
    fn malformed_lines_are_skipped_and_a_missing_log_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let current = dir.path().join("0.log");
        std::fs::write(
            &current,
            "garbage\n2024-01-01T00:00:01Z stdout F ok\nhalf-written",
        )
        .unwrap();
        assert_eq!(read(&current, &LogOptions::default()), "ok\n");
        assert_eq!(
            read(&dir.path().join("nope/0.log"), &LogOptions::default()),
            ""
        );
    }

    #[test]
    fn follow_sees_appended_records_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let current = write_log(dir.path(), "0.log", &[("2024-01-01T00:00:01Z", "F", "a")]);
        let path = current.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            writeln!(file, "2024-01-01T00:00:02Z stdout F b").unwrap();
            std::thread::sleep(Duration::from_millis(150));
            std::fs::rename(&path, path.with_extension("log.20240101-000002")).unwrap();
            write_log(
                path.parent().unwrap(),
                "0.log",
                &[("2024-01-01T00:00:03Z", "F", "c")],
            );
        });
        let mut sink = Collect {
            follow_rounds: 3,
            ..Collect::default()
        };
        let options = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        read_log(&current, &options, &mut sink).unwrap();
        writer.join().unwrap();
        assert_eq!(String::from_utf8(sink.out).unwrap(), "a\nb\nc\n");
    }
}
