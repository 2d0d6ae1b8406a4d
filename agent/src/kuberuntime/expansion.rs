//! `$(VAR_NAME)` expansion in env values, `command`, `args` and `subPathExpr`, with the rules
//! of upstream's `third_party/forked/golang/expansion`:
//!
//! - `$(NAME)` is replaced by the mapping's value; with [`expand`] an unknown `NAME` is left
//!   as `$(NAME)`;
//! - `$$` is an escaped `$`, so `$$(NAME)` yields the literal `$(NAME)`;
//! - a `$(` without a closing `)` and a `$` before any other byte are kept as written.

use std::borrow::Cow;
use std::collections::BTreeSet;

/// Expands every `$(NAME)` in `input` through `lookup`; references for which `lookup` returns
/// `None` are left untouched (`Expand` with `MappingFuncFor`).
#[must_use]
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    expand_with(input, |name| match lookup(name) {
        Some(value) => Cow::Borrowed(value),
        None => Cow::Owned(format!("$({name})")),
    })
}

/// Expands every `$(NAME)` in `input` with what `mapping` returns for `NAME` (`Expand`); the
/// mapping is called once per reference, in order.
pub fn expand_with<S: AsRef<str>>(input: &str, mut mapping: impl FnMut(&str) -> S) -> String {
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
                        out.push_str(mapping(&rest[1..close]).as_ref());
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

/// Expands a `subPathExpr` against the container's environment; every referenced variable must
/// have a non-empty value (`kubecontainer.ExpandContainerVolumeMounts`). On failure returns the
/// missing names, sorted and comma-separated.
pub fn expand_sub_path_expr(
    expr: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut missing = BTreeSet::new();
    let expanded = expand_with(expr, |name| match env(name) {
        Some(value) if !value.is_empty() => value,
        _ => {
            missing.insert(name.to_owned());
            String::new()
        }
    });
    if missing.is_empty() {
        Ok(expanded)
    } else {
        Err(missing.into_iter().collect::<Vec<_>>().join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::{expand, expand_sub_path_expr, expand_with};
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

    fn env(name: &str) -> Option<String> {
        match name {
            "POD" => Some("web-0".into()),
            "NS" => Some("default".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_with_a_mapping_like_kubernetes() {
        let map = |s: &str| env(s).unwrap_or_else(|| format!("$({s})"));
        assert_eq!(expand_with("logs/$(POD)", map), "logs/web-0");
        assert_eq!(expand_with("$(NS)/$(POD)", map), "default/web-0");
        assert_eq!(expand_with("$$(POD)", map), "$(POD)");
        assert_eq!(expand_with("a$", map), "a$");
        assert_eq!(expand_with("$(POD", map), "$(POD");
        assert_eq!(expand_with("$x$(POD)", map), "$xweb-0");
        assert_eq!(expand_with("é$é", map), "é$é");
        let mut seen = Vec::new();
        let out = expand_with("$(A)$(B)$()", |name: &str| {
            seen.push(name.to_owned());
            ""
        });
        assert_eq!(out, "");
        assert_eq!(seen, ["A", "B", ""]);
    }

    #[test]
    fn sub_path_expr_requires_every_variable() {
        assert_eq!(expand_sub_path_expr("x/$(POD)", &env).unwrap(), "x/web-0");
        assert_eq!(
            expand_sub_path_expr("$(B)/$(A)/$(EMPTY)/$(POD)", &env).unwrap_err(),
            "A, B, EMPTY"
        );
    }
}
