//! `$(VAR)` expansion as Kubernetes does it for commands, env and `subPathExpr`
//! (`third_party/forked/golang/expansion`): `$$` is an escaped `$`, an unterminated `$(` and
//! `$` before anything else stay as written.

/// Expands `$(NAME)` references in `input` with `mapping`.
pub fn expand(input: &str, mut mapping: impl FnMut(&str) -> String) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => {
                    if let Some(close) = rest.find(')') {
                        out.push_str(&mapping(&rest[1..close]));
                        close + 1
                    } else {
                        out.push_str("$(");
                        1
                    }
                }
                _ => {
                    // `$` and the next character (which may be multi-byte) stay as they are.
                    let next = rest.chars().next().map_or(1, char::len_utf8);
                    out.push('$');
                    out.push_str(&rest[..next]);
                    next
                }
            };
            cursor += advance + 1;
            checkpoint = cursor;
        } else {
            cursor += 1;
        }
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
    let mut missing = std::collections::BTreeSet::new();
    let expanded = expand(expr, |name| match env(name) {
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
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "POD" => Some("web-0".into()),
            "NS" => Some("default".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_like_kubernetes() {
        let map = |s: &str| env(s).unwrap_or_else(|| format!("$({s})"));
        assert_eq!(expand("logs/$(POD)", map), "logs/web-0");
        assert_eq!(expand("$(NS)/$(POD)", map), "default/web-0");
        assert_eq!(expand("$$(POD)", map), "$(POD)");
        assert_eq!(expand("a$", map), "a$");
        assert_eq!(expand("$(POD", map), "$(POD");
        assert_eq!(expand("$x$(POD)", map), "$xweb-0");
        assert_eq!(expand("é$é", map), "é$é");
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
