//! Glob properties: matching equals a naive recursive matcher; `is_within` is sound; `may_overlap` is exact.

use proptest::prelude::*;

use crate::glob;

/// Naive exponential reference matcher.
fn reference(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
        Some(('?', rest)) => !t.is_empty() && reference(rest, &t[1..]),
        Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
    }
}

fn ref_matches(p: &str, t: &str) -> bool {
    let p: Vec<char> = p.chars().collect();
    let t: Vec<char> = t.chars().collect();
    reference(&p, &t)
}

/// Patterns built from pieces that make inclusions likely.
fn piece_pattern() -> impl Strategy<Value = String> {
    let pieces = vec!["openai/", "gpt", "-4o", "a", "*", "?", "-mini", "/"];
    prop::collection::vec(prop::sample::select(pieces), 0..5).prop_map(|v| v.concat())
}

/// A string matched by `pattern`: wildcards filled from `fills` in turn.
fn instantiate(pattern: &str, fills: &[String]) -> String {
    let mut out = String::new();
    let mut next = fills.iter().cycle();
    for c in pattern.chars() {
        match c {
            '*' => out.push_str(next.next().map_or("", String::as_str)),
            '?' => out.push(next.next().and_then(|f| f.chars().next()).unwrap_or('z')),
            c => out.push(c),
        }
    }
    out
}

/// Every string over `alphabet` of length at most `max_len`.
fn all_strings(alphabet: &[char], max_len: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut frontier = vec![String::new()];
    for _ in 0..max_len {
        let mut next = Vec::new();
        for s in &frontier {
            for &c in alphabet {
                let mut t = s.clone();
                t.push(c);
                next.push(t);
            }
        }
        out.extend(next.iter().cloned());
        frontier = next;
    }
    out
}

proptest! {
    #[test]
    fn matches_agrees_with_reference(p in "[ab*?/é]{0,8}", t in "[abé/]{0,10}") {
        prop_assert_eq!(glob::matches(&p, &t), ref_matches(&p, &t), "{:?} vs {:?}", p, t);
    }

    #[test]
    fn matches_own_instantiations(p in piece_pattern(), fills in prop::collection::vec("[ab/z-]{0,3}", 1..4)) {
        let s = instantiate(&p, &fills);
        prop_assert!(glob::matches(&p, &s), "{:?} should match {:?}", p, s);
        prop_assert!(ref_matches(&p, &s));
    }

    #[test]
    fn within_is_sound(
        inner in piece_pattern(),
        outer in piece_pattern(),
        fills in prop::collection::vec("[ab/z-]{0,3}", 1..4),
    ) {
        if glob::is_within(&inner, &outer) {
            let s = instantiate(&inner, &fills);
            prop_assert!(glob::matches(&outer, &s), "{:?} within {:?} but {:?} escapes", inner, outer, s);
        }
    }

    #[test]
    fn within_is_reflexive_and_transitive(a in piece_pattern(), b in piece_pattern(), c in piece_pattern()) {
        prop_assert!(glob::is_within(&a, &a));
        if glob::is_within(&a, &b) && glob::is_within(&b, &c) {
            prop_assert!(glob::is_within(&a, &c), "{:?} <= {:?} <= {:?}", a, b, c);
        }
        prop_assert!(glob::is_within(&a, "*"));
    }

    #[test]
    fn literal_within_is_exact(lit in "[ab/]{0,6}", outer in "[ab*?/]{0,5}") {
        prop_assert_eq!(glob::is_within(&lit, &outer), glob::matches(&outer, &lit));
    }

    #[test]
    fn overlap_is_exact(a in "[ab*?]{0,4}", b in "[ab*?]{0,4}") {
        let witness = all_strings(&['a', 'b', 'z'], a.chars().count() + b.chars().count())
            .into_iter()
            .find(|s| glob::matches(&a, s) && glob::matches(&b, s));
        prop_assert_eq!(glob::may_overlap(&a, &b), witness.is_some(), "{:?} ~ {:?}: {:?}", a, b, witness);
    }

    #[test]
    fn normalize_keeps_the_language(p in "[ab*?]{0,6}", t in "[ab]{0,6}") {
        prop_assert_eq!(glob::matches(&glob::normalize(&p), &t), glob::matches(&p, &t));
    }
}
