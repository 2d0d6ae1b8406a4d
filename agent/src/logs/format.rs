//! One line of a container log file in the CRI format:
//! `<RFC 3339 nano timestamp> <stdout|stderr> <P|F>[:more tags] <content>\n`, where `P` marks a
//! partial line (the runtime split a long line; the next record continues it) and `F` a full
//! one.

use jiff::Timestamp;

/// The stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One parsed record; `content` is without the line's trailing newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord<'a> {
    /// The timestamp as written (RFC 3339 with nanoseconds).
    pub timestamp: &'a str,
    pub time: Timestamp,
    pub stream: Stream,
    /// Continued by the next record (`P`), rather than a whole line (`F`).
    pub partial: bool,
    pub content: &'a [u8],
}

/// A line that is not in the CRI log format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("log line has no {0}")]
    Missing(&'static str),
    #[error("log line timestamp {0:?} is not RFC 3339")]
    Timestamp(String),
    #[error("log line stream {0:?} is neither stdout nor stderr")]
    Stream(String),
}

/// Splits off the bytes before the next space.
fn field<'a>(rest: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], ParseError> {
    let at = rest
        .iter()
        .position(|b| *b == b' ')
        .ok_or(ParseError::Missing(what))?;
    let (head, tail) = rest.split_at(at);
    *rest = &tail[1..];
    Ok(head)
}

/// Parses one record; `line` may end with its newline.
pub fn parse(line: &[u8]) -> Result<LogRecord<'_>, ParseError> {
    let mut rest = line.strip_suffix(b"\n").unwrap_or(line);
    let timestamp = std::str::from_utf8(field(&mut rest, "timestamp")?)
        .map_err(|_| ParseError::Timestamp(String::from_utf8_lossy(line).into_owned()))?;
    let time: Timestamp = timestamp
        .parse()
        .map_err(|_| ParseError::Timestamp(timestamp.to_owned()))?;
    let stream = match field(&mut rest, "stream")? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => {
            return Err(ParseError::Stream(
                String::from_utf8_lossy(other).into_owned(),
            ));
        }
    };
    // The tags are optional in old files: a record whose third field is not a tag is a full
    // line with that field as the start of its content.
    let partial = match rest.iter().position(|b| *b == b' ') {
        Some(at) if is_tags(&rest[..at]) => {
            let partial = rest[..at].split(|b| *b == b':').next() == Some(b"P");
            rest = &rest[at + 1..];
            partial
        }
        None if is_tags(rest) => {
            let partial = rest.split(|b| *b == b':').next() == Some(b"P");
            rest = &[];
            partial
        }
        _ => false,
    };
    Ok(LogRecord {
        timestamp,
        time,
        stream,
        partial,
        content: rest,
    })
}

fn is_tags(field: &[u8]) -> bool {
    matches!(field.split(|b| *b == b':').next(), Some(b"P" | b"F"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_partial_records() {
        let full = parse(b"2016-10-06T00:17:09.669794202Z stdout F hello world\n").unwrap();
        assert_eq!(full.timestamp, "2016-10-06T00:17:09.669794202Z");
        assert_eq!(full.stream, Stream::Stdout);
        assert!(!full.partial);
        assert_eq!(full.content, b"hello world");
        assert_eq!(full.time.as_nanosecond(), 1_475_713_029_669_794_202);

        let partial = parse(b"2016-10-06T00:17:09.669794203Z stderr P:x half").unwrap();
        assert_eq!(partial.stream, Stream::Stderr);
        assert!(partial.partial);
        assert_eq!(partial.content, b"half");

        let empty = parse(b"2016-10-06T00:17:09Z stdout F\n").unwrap();
        assert_eq!(empty.content, b"");
        let empty_with_space = parse(b"2016-10-06T00:17:09Z stdout F \n").unwrap();
        assert_eq!(empty_with_space.content, b"");
        let untagged = parse(b"2016-10-06T00:17:09Z stdout old style").unwrap();
        assert!(!untagged.partial);
        assert_eq!(untagged.content, b"old style");
    }

    #[test]
    fn malformed_records() {
        assert_eq!(parse(b"nothing"), Err(ParseError::Missing("timestamp")));
        assert!(matches!(
            parse(b"yesterday stdout F x"),
            Err(ParseError::Timestamp(_))
        ));
        assert!(matches!(
            parse(b"2016-10-06T00:17:09Z stdin F x"),
            Err(ParseError::Stream(_))
        ));
    }
}
