//! Values that must be one of a fixed set of names (`backend`, `redis.mode`, `types.<name>.single_flight`, the
//! profile, …) and keys that must be one of a table's fields: one place reads them, so every such error lists
//! the valid names and suggests the nearest one to what was typed (`"reddis"`: did you mean `"redis"`?).

/// The value named `given` among `choices` (compared without ASCII case or surrounding white space).
///
/// # Errors
/// What was given, every valid name and, when one is within a small edit distance, the nearest.
pub(crate) fn pick<T: Copy>(given: &str, choices: &[(&str, T)]) -> Result<T, String> {
    let wanted = given.trim();
    if let Some((_, value)) = choices.iter().find(|(n, _)| n.eq_ignore_ascii_case(wanted)) {
        return Ok(*value);
    }
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    Err(not_one_of(given, &names))
}

/// `"reddis" is not one of memory, disk, redis; did you mean "redis"?`
pub(crate) fn not_one_of(given: &str, names: &[&str]) -> String {
    // A value pasted by mistake (a whole file, a key) is not repeated at length.
    let shown: String = given.chars().take(64).collect();
    format!(
        "{shown:?} is not one of {}{}",
        names.join(", "),
        did_you_mean(given, names)
    )
}

/// `; did you mean "redis"?`, or nothing when no name is near `given`.
pub(crate) fn did_you_mean(given: &str, names: &[&str]) -> String {
    nearest(given, names).map_or_else(String::new, |n| format!("; did you mean {n:?}?"))
}

/// The name nearest to `given`: within a third of the name's length in edits (Damerau–Levenshtein, so one
/// swapped pair of letters is one edit; at least 1, at most 3), or a name `given` begins (3 letters or more).
/// Case is ignored. `None` when nothing is that near: a wild guess helps nobody.
pub(crate) fn nearest<'a>(given: &str, names: &[&'a str]) -> Option<&'a str> {
    let given = given.trim().to_ascii_lowercase();
    if given.is_empty() {
        return None;
    }
    names
        .iter()
        .filter_map(|name| {
            let lower = name.to_ascii_lowercase();
            let distance = strsim::damerau_levenshtein(&given, &lower);
            let near = distance <= (lower.chars().count() / 3).clamp(1, 3);
            let begun = given.len() >= 3 && lower.starts_with(&given);
            (near || begun).then_some((distance, *name))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_is_answered_with_the_nearest_name_and_a_stranger_with_none() {
        let names = ["memory", "disk", "redis"];
        assert_eq!(nearest("reddis", &names), Some("redis"));
        assert_eq!(nearest("REDIS ", &names), Some("redis"));
        assert_eq!(nearest("dsik", &names), Some("disk"));
        assert_eq!(nearest("mem", &names), Some("memory"));
        assert_eq!(nearest("memcached", &names), None);
        assert_eq!(nearest("", &names), None);
        assert_eq!(
            nearest("prodution", &["development", "production"]),
            Some("production")
        );
    }

    #[test]
    fn an_unknown_value_lists_every_valid_one() {
        let choices = [("process", 1), ("distributed", 2)];
        assert_eq!(pick("Distributed", &choices), Ok(2));
        assert_eq!(
            pick("proces", &choices).unwrap_err(),
            r#""proces" is not one of process, distributed; did you mean "process"?"#
        );
        assert_eq!(
            pick("sometimes", &choices).unwrap_err(),
            r#""sometimes" is not one of process, distributed"#
        );
    }
}
