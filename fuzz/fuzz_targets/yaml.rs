//! The YAML reader behind the config and routes files (host/src/yaml.rs), fed arbitrary
//! text, then walked the way the readers walk it: every mapping read with `Fields`, every
//! value turned into JSON and described, `${VAR}` interpolation run, and every scalar tried
//! as a duration. The admin console's "validate routes" form puts such text in front of
//! this code, so it must answer with problems, never panic, hang or blow up.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_fuzz::yaml::{self, Fields, Node, NodeKind, Problem};

fuzz_target!(|data: &[u8]| {
    // Files and form fields reach the reader as `String`s, so only UTF-8 is of interest.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => return,
        Err(problems) => {
            assert!(!problems.is_empty(), "an error with no problem in it");
            render(&problems);
            return;
        }
    };
    walk(&root);
    let _ = root.to_json();

    // A few variables set, one empty, the rest unset: every branch of `${VAR:-default}`.
    let env = |name: &str| match name {
        "HOST" => Some("example.test".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let mut problems = Vec::new();
    yaml::interpolate_env(&mut root, &env, &mut problems);
    render(&problems);
    walk(&root);
});

fn render(problems: &[Problem]) {
    for problem in problems {
        let _ = problem.render("fuzz.yaml");
        let _ = problem.to_string();
    }
}

/// Everything a reader may ask of a node, on every node.
fn walk(node: &Node) {
    let _ = node.describe();
    let _ = node.is_null();
    match &node.kind {
        NodeKind::Scalar(scalar) => {
            // What `format_duration` writes, `parse_duration` must read back unchanged.
            if let Ok(duration) = yaml::parse_duration(&scalar.text) {
                let written = yaml::format_duration(duration);
                assert_eq!(
                    yaml::parse_duration(&written),
                    Ok(duration),
                    "{:?} was written back as {written:?}",
                    scalar.text
                );
            }
        }
        NodeKind::Sequence(items) => items.iter().for_each(walk),
        NodeKind::Mapping(entries) => {
            let mut problems = Vec::new();
            if let Some(fields) = Fields::new(node, "a mapping", &["name", "to"], &mut problems) {
                let _ = fields.get("name");
                let _ = fields.key("to");
            }
            render(&problems);
            for (key, value) in entries {
                walk(key);
                walk(value);
            }
        }
    }
}
