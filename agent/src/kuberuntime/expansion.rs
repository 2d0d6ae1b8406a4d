//! `$(VAR_NAME)` expansion in env values, `command` and `args`, with the rules of upstream's
//! `third_party/forked/golang/expansion`:
//!
//! - `$(NAME)` is replaced by the mapping's value; an unknown `NAME` is left as `$(NAME)`;
//! - `$$` is an escaped `$`, so `$$(NAME)` yields the literal `$(NAME)`;
//! - a `$(` without a closing `)` and a `$` before any other byte are kept as written.

/// Expands every `$(NAME)` in `input` through `lookup`; references for which `lookup` returns
/// `None` are left untouched.
#[must_use]
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                // `$$`: an escaped operator.
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => {
                    if let Some(close) = rest.find(')') {
                        let name = &rest[1..close];
                        if let Some(value) = lookup(name) {
                            out.push_str(value);
                        } else {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                        close + 1
                    } else {
                        // Incomplete reference: keep `$(` and go on after it.
                        out.push_str("$(");
                        1
                    }
                }
                // Not an expression: keep the `$`; the next byte is copied from the input.
                _ => {
                    out.push('$');
                    0
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::expand;
    use std::collections::BTreeMap;

    fn run(input: &str) -> String {
        let vars: BTreeMap<&str, &str> = [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
        ]
        .into_iter()
        .collect();
        expand(input, |name| vars.get(name).copied())
    }

    /// Cases from upstream's `expand_test.go` (`TestMapReference` / `TestMapping`).
    #[test]
    fn matches_upstream_expansion_table() {
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_A)-1", "A-1"),
            ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("$(VAR_A)$(VAR_B)", "AB"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("foo\\$(VAR_C)bar", "foo\\Cbar"),
            ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
            ("$(VAR_A)$(VAR_B)$(VAR_C)", "ABC"),
            ("$(VAR_EMPTY)", ""),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
            ("$(VAR_DNE)", "$(VAR_DNE)"),
            ("$(VAR_A", "$(VAR_A"),
            ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("$VAR_A", "$VAR_A"),
            ("$VAR_A$(VAR_B)", "$VAR_AB"),
            ("$(VAR_A)$", "A$"),
            ("$", "$"),
            ("$$", "$"),
            ("foo$", "foo$"),
            ("$()", "$()"),
            ("$()$(VAR_A)", "$()A"),
            ("$(VAR_A)é$(VAR_B)", "AéB"),
            ("$é", "$é"),
        ];
        for (input, expected) in cases {
            assert_eq!(run(input), expected, "input {input:?}");
        }
    }
}
