//! Redis `MATCH` glob semantics (`*`, `?`, `[…]` with `^` and ranges, `\` escapes), byte by byte: the patterns
//! this crate builds, matched the way Redis matches them (by the in-process and disk backends, and by tests). Written out because the pattern crates on crates.io implement shell or path globs, whose
//! separators and escapes differ from Redis's.

/// Whether `text` matches the Redis glob `pattern`. Linear backtracking on `*`; no recursion.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    star = Some((p, t));
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(pattern, p, text[t]) {
                        if matched {
                            p = next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// Matches `c` against the class starting at `pattern[open] == b'['`; `None` if the class is unterminated.
fn class(pattern: &[u8], open: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        let &b = pattern.get(i)?;
        match b {
            b']' => return Some((matched != negate, i + 1)),
            b'\\' => {
                let &lit = pattern.get(i + 1)?;
                matched |= lit == c;
                i += 2;
            }
            _ if pattern.get(i + 1) == Some(&b'-')
                && pattern.get(i + 2).is_some_and(|&e| e != b']') =>
            {
                let (mut lo, mut hi) = (b, pattern[i + 2]);
                if lo > hi {
                    std::mem::swap(&mut lo, &mut hi);
                }
                matched |= (lo..=hi).contains(&c);
                i += 3;
            }
            _ => {
                matched |= b == c;
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn redis_glob_semantics() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything:at:all", true),
            ("a*", "abc", true),
            ("a*c", "abxc", true),
            ("a*c", "abxd", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hallo", true),
            ("t_\\*:*", "t_*:x", true),
            ("t_\\*:*", "t_a:x", false),
            ("a\\?", "a?", true),
            ("a\\?", "ab", false),
            ("x[", "x[", true),
            ("**a", "ba", true),
            ("p:*:k*", "p:session:k1", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                *want,
                "{pattern} ~ {text}"
            );
        }
    }
}
