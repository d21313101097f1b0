//! Glob patterns: `*` matches any run of characters (including none, including `/`), `?` matches exactly one.
//!
//! Matching is case-sensitive, by Unicode scalar value, without escapes. Every other
//! character matches itself; `[`, `]`, `{`, `}` and `\` are rejected by [`check_pattern`]
//! so they stay free for a later syntax.
//!
//! Two relations between patterns are provided:
//! * [`is_within`]: a *sound, conservative* language inclusion test. `true` means every
//!   string matched by `inner` is matched by `outer`; `false` may also mean "could not tell".
//! * [`may_overlap`]: an *exact* test whether some string is matched by both patterns.

/// Longest pattern accepted by [`check_pattern`], in bytes.
pub const MAX_PATTERN_LEN: usize = 256;

/// Why `pattern` is not an acceptable glob, or `Ok(())`.
pub fn check_pattern(pattern: &str) -> Result<(), &'static str> {
    if pattern.is_empty() {
        return Err("empty pattern");
    }
    if pattern.len() > MAX_PATTERN_LEN {
        return Err("pattern longer than 256 bytes");
    }
    if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("whitespace or control character");
    }
    if pattern
        .chars()
        .any(|c| matches!(c, '[' | ']' | '{' | '}' | '\\'))
    {
        return Err("reserved character ([ ] { } \\); only * and ? are wildcards");
    }
    Ok(())
}

/// `true` when `pattern` has no wildcard, so it matches exactly itself.
pub fn is_literal(pattern: &str) -> bool {
    !pattern.contains(['*', '?'])
}

/// `true` when `pattern` matches all of `text`.
pub fn matches(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        match_slices(pattern.as_bytes(), text.as_bytes(), b'*', b'?')
    } else {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        match_slices(&p, &t, '*', '?')
    }
}

/// Iterative matcher that backtracks only to the last `*`: O(len(p) * len(t)) worst case.
fn match_slices<T: PartialEq + Copy>(p: &[T], t: &[T], star: T, any: T) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // (index of the last star in p, index in t it is currently made to stop at)
    let mut resume: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(&c) if c == star => {
                resume = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == any || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match resume {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    resume = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == star)
}

/// `pattern` with every run of `*` collapsed to one (same language).
pub fn normalize(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut last_star = false;
    for c in pattern.chars() {
        if c == '*' && last_star {
            continue;
        }
        last_star = c == '*';
        out.push(c);
    }
    out
}

/// The characters before the first wildcard.
fn literal_prefix(pattern: &str) -> &str {
    pattern.find(['*', '?']).map_or(pattern, |i| &pattern[..i])
}

/// Sound, conservative inclusion: `true` only if every string `inner` matches is matched by `outer`.
///
/// Rules, after collapsing `**` to `*`: `outer` is `*`; the patterns are equal; `inner`
/// is a literal that `outer` matches; `outer` is `P*` with `P` literal and the literal
/// prefix of `inner` (up to its first wildcard) starts with `P`. Anything else is `false`.
/// These rules compose, so the relation is reflexive and transitive.
pub fn is_within(inner: &str, outer: &str) -> bool {
    let (inner, outer) = (normalize(inner), normalize(outer));
    if outer == "*" || inner == outer {
        return true;
    }
    if is_literal(&inner) {
        return matches(&outer, &inner);
    }
    match outer.strip_suffix('*') {
        Some(prefix) if is_literal(prefix) => literal_prefix(&inner).starts_with(prefix),
        _ => false,
    }
}

/// Exact test: `true` when at least one string is matched by both patterns.
///
/// Dynamic programming over pairs of positions, O(len(a) * len(b)); patterns longer than
/// [`MAX_PATTERN_LEN`] characters are answered `true` (the safe side for every caller:
/// "may overlap").
pub fn may_overlap(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > MAX_PATTERN_LEN || b.len() > MAX_PATTERN_LEN {
        return true;
    }
    let (n, m) = (a.len(), b.len());
    let width = m + 1;
    // reach[i * width + j]: some string is matched by both a[..i] and b[..j]
    let mut reach = vec![false; (n + 1) * width];
    reach[0] = true;
    for i in 0..=n {
        for j in 0..=m {
            if !reach[i * width + j] {
                continue;
            }
            let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
            if ca == Some('*') {
                reach[(i + 1) * width + j] = true; // a's star ends here
                if cb.is_some() {
                    reach[i * width + j + 1] = true; // a's star absorbs b[j]
                }
            }
            if cb == Some('*') {
                reach[i * width + j + 1] = true;
                if ca.is_some() {
                    reach[(i + 1) * width + j] = true;
                }
            }
            if let (Some(x), Some(y)) = (ca, cb)
                && x != '*'
                && y != '*'
                && (x == '?' || y == '?' || x == y)
            {
                reach[(i + 1) * width + j + 1] = true;
            }
        }
    }
    reach[n * width + m]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "openai/gpt-4o", true),
            ("openai/gpt-4o*", "openai/gpt-4o", true),
            ("openai/gpt-4o*", "openai/gpt-4o-mini", true),
            ("openai/gpt-4o*", "openai/gpt-4", false),
            ("anthropic/*", "anthropic/claude/x", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "aéc", true),
            ("*-mini", "openai/gpt-4o-mini", true),
            ("*-mini", "openai/gpt-4o-mini-x", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("", "", true),
            ("", "a", false),
            ("abc", "ABC", false),
            ("**a**", "bab", true),
            ("résumé*", "résumé-v2", true),
        ];
        for &(p, t, want) in cases {
            assert_eq!(matches(p, t), want, "{p:?} vs {t:?}");
        }
    }

    #[test]
    fn check_pattern_table() {
        let cases: &[(&str, bool)] = &[
            ("openai/*", true),
            ("resource:resend/*", true),
            ("", false),
            ("a b", false),
            ("a\tb", false),
            ("gpt-[45]", false),
            ("{a,b}", false),
            ("a\\*", false),
        ];
        for &(p, ok) in cases {
            assert_eq!(check_pattern(p).is_ok(), ok, "{p:?}");
        }
        assert!(check_pattern(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
        assert!(check_pattern(&"a".repeat(MAX_PATTERN_LEN)).is_ok());
    }

    #[test]
    fn within_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("openai/gpt-4o", "*", true),
            ("*", "*", true),
            ("**", "*", true),
            ("*", "**", true),
            ("openai/gpt-4o", "openai/gpt-4o", true),
            ("openai/gpt-4o", "openai/*", true),
            ("openai/gpt-4o-mini", "*-mini", true),
            ("openai/gpt-4o*", "openai/*", true),
            ("openai/gpt-4o*", "openai/gpt-4o*", true),
            ("openai/gpt-?o", "openai/gpt-*", true),
            ("openai/*", "openai/gpt-4o*", false),
            ("*", "openai/*", false),
            ("openai/*-mini", "*-mini", false), // true, but not provable by the rules
            ("openai/gpt-4o", "anthropic/*", false),
            ("a?", "ab", false),
            ("ab", "a?", true),
        ];
        for &(inner, outer, want) in cases {
            assert_eq!(is_within(inner, outer), want, "{inner:?} within {outer:?}");
        }
    }

    #[test]
    fn overlap_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "resource:resend/*", true),
            ("resource:*", "resource:resend/*", true),
            ("resource:s3/*", "resource:resend/*", false),
            ("chat", "resource:resend/*", false),
            ("a*b", "*c", false),
            ("a*b", "*b", true),
            ("a?", "?b", true),
            ("a?", "abc", false),
            ("*x*", "*y*", true),
            ("", "*", true),
            ("", "?", false),
        ];
        for &(a, b, want) in cases {
            assert_eq!(may_overlap(a, b), want, "{a:?} ~ {b:?}");
            assert_eq!(may_overlap(b, a), want, "{b:?} ~ {a:?}");
        }
    }

    #[test]
    fn normalize_collapses_stars() {
        assert_eq!(normalize("a***b**"), "a*b*");
        assert_eq!(normalize("?*?"), "?*?");
        assert!(is_literal("openai/gpt-4o"));
        assert!(!is_literal("openai/gpt-4?"));
    }
}
