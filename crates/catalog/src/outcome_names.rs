//! The catalog's statements name job outcomes in their SQL (`outcome = 'complete'`): each such
//! name must be a [`JobOutcome`]'s, so that what a statement counts is what workers record.

use recast_core::JobOutcome;

/// Every statement's source that names an outcome.
const SOURCES: [(&str, &str); 3] = [
    ("sql_read.rs", include_str!("sql_read.rs")),
    ("counters.rs", include_str!("counters.rs")),
    ("sql_write.rs", include_str!("sql_write.rs")),
];

/// The quoted names compared with `outcome` in `text` (`outcome = 'x'`, `outcome <> 'x'`).
fn names_in(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, _) in text.match_indices("outcome ") {
        let rest = &text[i + "outcome ".len()..];
        let rest = rest
            .strip_prefix("= '")
            .or_else(|| rest.strip_prefix("<> '"));
        if let Some(name) = rest.and_then(|r| r.split_once('\'')).map(|(n, _)| n) {
            names.push(name.to_owned());
        }
    }
    names
}

#[test]
fn statements_name_only_known_outcomes() {
    let mut seen = Vec::new();
    for (file, text) in SOURCES {
        for name in names_in(text) {
            let outcome: JobOutcome = name
                .parse()
                .unwrap_or_else(|e| panic!("{file}: {e}; add it to JobOutcome or fix the SQL"));
            seen.push(outcome);
        }
    }
    // The statements count completions, retries, and set the producer's attempts apart.
    for needed in [
        JobOutcome::Complete,
        JobOutcome::Retry,
        JobOutcome::Producer,
    ] {
        assert!(seen.contains(&needed), "no statement names {needed}");
    }
    assert_eq!(
        names_in("WHERE a.outcome = 'x' AND outcome <> 'y'"),
        ["x", "y"]
    );
}
