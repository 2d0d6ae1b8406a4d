//! Container logs: the CRI log format, reading a log across its rotated files as
//! `kubectl logs` asks (tail, since, timestamps, byte limit, follow), and the log rotation of
//! running containers (`containerLogMaxSize`, `containerLogMaxFiles`).

pub mod format;
pub mod reader;
pub mod rotation;

pub use format::{LogRecord, ParseError, Stream};
pub use reader::{LogOptions, LogSink, log_files, read_log};
pub use rotation::{ContainerLogManager, RotationError};
