//! Static bearer tokens from a file, as kube-apiserver's `--token-auth-file`: a CSV file with
//! at least three columns `token,user,uid` and an optional fourth with the groups, quoted when
//! there are several: `31ada4fd-adec-460c-809a-9e56ceb75269,alice,1001,"dev,ops"`.
//!
//! The CSV dialect is Go's `encoding/csv` as kube-apiserver reads the file: fields separated by
//! commas, `"` quotes a field (inside, `""` is a quote and newlines are kept), blank lines are
//! skipped, a quote inside an unquoted field is an error. Records with an empty token are
//! skipped; of two records with the same token the later one wins.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::user::UserInfo;

/// Errors of reading a token file.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("reading token file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "token file line {line}: a record must have at least 3 columns (token, user name, user uid), found {found}"
    )]
    TooFewColumns { line: usize, found: usize },
    #[error("token file line {line}: bare \" in non-quoted field")]
    BareQuote { line: usize },
    #[error("token file line {line}: extraneous or missing \" in quoted field")]
    MisplacedQuote { line: usize },
}

/// The users of a token file, by token.
#[derive(Clone, Default)]
pub struct StaticTokens {
    users: HashMap<String, UserInfo>,
}

impl fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTokens")
            .field("users", &self.users.len())
            .finish()
    }
}

impl StaticTokens {
    /// Reads a token file.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let contents = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&contents)
    }

    /// Parses the contents of a token file.
    pub fn parse(contents: &str) -> Result<Self, TokenFileError> {
        let mut users = HashMap::new();
        for (line, record) in parse_csv(contents)? {
            let [token, name, uid, rest @ ..] = record.as_slice() else {
                return Err(TokenFileError::TooFewColumns {
                    line,
                    found: record.len(),
                });
            };
            if token.is_empty() {
                tracing::warn!(
                    line,
                    "skipping a record with an empty token in the token file"
                );
                continue;
            }
            let groups = rest
                .first()
                .map(|g| g.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            let user = UserInfo {
                name: name.clone(),
                uid: uid.clone(),
                groups,
                ..UserInfo::default()
            }
            .with_authenticated_group();
            if users.insert(token.clone(), user).is_some() {
                tracing::warn!(
                    line,
                    "duplicate token in the token file, the later one wins"
                );
            }
        }
        Ok(Self { users })
    }

    /// Adds a token (the API server's own loopback identity, for one).
    pub fn insert(&mut self, token: &str, user: UserInfo) {
        self.users
            .insert(token.to_owned(), user.with_authenticated_group());
    }

    /// The user of `token`, if the file has it.
    #[must_use]
    pub fn authenticate(&self, token: &str) -> Option<UserInfo> {
        self.users.get(token).cloned()
    }

    /// How many tokens the file has.
    #[must_use]
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file has no tokens.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Splits CSV text into records, each with the line number it starts on.
fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, TokenFileError> {
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start_line = line;
        // Skip blank lines (Go's reader does, also "\r\n").
        if matches!(chars.peek(), Some('\n')) {
            chars.next();
            line += 1;
            continue;
        }
        if matches!(chars.peek(), Some('\r')) {
            let mut lookahead = chars.clone();
            lookahead.next();
            if matches!(lookahead.peek(), Some('\n') | None) {
                chars.next();
                continue;
            }
        }
        let mut record = Vec::new();
        loop {
            let mut field = String::new();
            let quoted = matches!(chars.peek(), Some('"'));
            if quoted {
                chars.next();
                loop {
                    match chars.next() {
                        Some('"') => match chars.peek() {
                            Some('"') => {
                                chars.next();
                                field.push('"');
                            }
                            Some(',' | '\n' | '\r') | None => break,
                            Some(_) => return Err(TokenFileError::MisplacedQuote { line }),
                        },
                        Some('\n') => {
                            line += 1;
                            field.push('\n');
                        }
                        Some(c) => field.push(c),
                        None => return Err(TokenFileError::MisplacedQuote { line: start_line }),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    match c {
                        ',' | '\n' => break,
                        '\r' => {
                            let mut lookahead = chars.clone();
                            lookahead.next();
                            if matches!(lookahead.peek(), Some('\n') | None) {
                                break;
                            }
                            field.push(c);
                            chars.next();
                        }
                        '"' => return Err(TokenFileError::BareQuote { line }),
                        _ => {
                            field.push(c);
                            chars.next();
                        }
                    }
                }
            }
            record.push(field);
            match chars.next() {
                Some(',') => {}
                Some('\r') => {
                    if matches!(chars.peek(), Some('\n')) {
                        chars.next();
                    }
                    line += 1;
                    break;
                }
                Some('\n') => {
                    line += 1;
                    break;
                }
                // Anything else was consumed by the field loops; None ends the text.
                _ => break,
            }
        }
        records.push((start_line, record));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Vec<Vec<String>> {
        parse_csv(text)
            .expect("valid csv")
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }

    #[test]
    fn csv_dialect() {
        assert_eq!(csv("a,b,c\n"), vec![vec!["a", "b", "c"]]);
        assert_eq!(csv("a,\"b,c\",d"), vec![vec!["a", "b,c", "d"]]);
        assert_eq!(
            csv("\"x\"\"y\",z\r\n\r\nq,r\n"),
            vec![vec!["x\"y", "z"], vec!["q", "r"]]
        );
        assert_eq!(
            csv("a,\"multi\nline\"\nb"),
            vec![vec!["a", "multi\nline"], vec!["b"]]
        );
        assert_eq!(csv("a,,\n"), vec![vec!["a", "", ""]]);
    }

    #[test]
    fn csv_errors_name_the_line() {
        assert!(matches!(
            parse_csv("ok,ok,ok\nbad\"quote,x,y\n"),
            Err(TokenFileError::BareQuote { line: 2 })
        ));
        assert!(matches!(
            parse_csv("\"open,x,y\n"),
            Err(TokenFileError::MisplacedQuote { line: 1 })
        ));
        assert!(matches!(
            parse_csv("\"a\"b,x,y\n"),
            Err(TokenFileError::MisplacedQuote { line: 1 })
        ));
    }
}
