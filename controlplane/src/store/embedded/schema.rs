//! The embedded store's tables and connection settings.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::OpenError;
use crate::store::Revision;

/// Bumped whenever the tables change incompatibly.
pub(super) const SCHEMA_VERSION: i64 = 1;

/// One row per revision. `prev_revision` is the id of the key's previous *live* row (0 for a
/// creation); a tombstone (`deleted = 1`) keeps the create revision of what it deleted and
/// an empty value, the value being that previous row's. `meta` holds `compact_revision`.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    id              INTEGER PRIMARY KEY,
    key             BLOB    NOT NULL,
    value           BLOB    NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL,
    deleted         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_key_id ON kv (key, id);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('compact_revision', 0);
";

/// How long a connection waits for `SQLite`'s own locks (a checkpoint) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The revisions found on open.
#[derive(Debug, Clone, Copy)]
pub(super) struct State {
    pub(super) revision: Revision,
    pub(super) compacted: Revision,
}

/// Opens the write connection, creating or checking the schema.
pub(super) fn open_writer(path: &Path) -> Result<(Connection, State), OpenError> {
    let schema_err = |source| OpenError::Schema {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(|source| OpenError::OpenDatabase {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(schema_err)?;
    // WAL: readers never block the writer; FULL: every commit is fsynced before it returns,
    // so an acknowledged write survives a crash of the process or the machine.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(schema_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::JournalMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(schema_err)?;
    // Truncate the WAL after checkpoints rather than keep it at its largest size forever.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(schema_err)?;

    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(schema_err)?;
    match found {
        0 => {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(schema_err)?;
        }
        SCHEMA_VERSION => {}
        found => {
            return Err(OpenError::SchemaVersion {
                path: path.to_path_buf(),
                found,
                expected: SCHEMA_VERSION,
            });
        }
    }
    let state = read_state(&conn).map_err(schema_err)?;
    Ok((conn, state))
}

/// Opens one read connection.
pub(super) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// The store's revision: the newest row, or the compaction if that removed the newest rows
/// (tombstones). Revisions are never reused because nothing above the compacted revision
/// is ever deleted.
pub(super) const REVISION_SQL: &str = "SELECT max(coalesce((SELECT max(id) FROM kv), 0), \
     (SELECT value FROM meta WHERE name = 'compact_revision'))";
/// The revision of the last compaction.
pub(super) const COMPACTED_SQL: &str = "SELECT value FROM meta WHERE name = 'compact_revision'";

fn read_state(conn: &Connection) -> rusqlite::Result<State> {
    Ok(State {
        revision: conn.query_row(REVISION_SQL, [], |row| row.get(0))?,
        compacted: conn.query_row(COMPACTED_SQL, [], |row| row.get(0))?,
    })
}
