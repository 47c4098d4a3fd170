//! The README's "Getting started" section shows the files of `examples/getting-started/`,
//! which CI builds and tests: this keeps the two the same, so the section cannot rot.
//! (The README's other Rust blocks are compiled as doctests: see `src/lib.rs`.)

use std::path::Path;

/// The files the section shows in full, each under a `**`<path>`**` heading.
const SHOWN_IN_FULL: [&str; 4] = [
    "proto/greeter.proto",
    "build.rs",
    "src/lib.rs",
    "src/main.rs",
];

/// The first fenced block after the line that starts with `heading`.
fn block_after<'a>(readme: &'a str, heading: &str) -> Option<String> {
    let mut lines = readme.lines().skip_while(|line| !line.starts_with(heading));
    lines.next()?;
    let mut lines = lines.skip_while(|line| !line.starts_with("```"));
    lines.next()?;
    let body: Vec<&'a str> = lines.take_while(|line| !line.starts_with("```")).collect();
    Some(body.iter().map(|line| format!("{line}\n")).collect())
}

#[test]
fn the_getting_started_section_shows_the_app_file_for_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for file in SHOWN_IN_FULL {
        let shown = block_after(&readme, &format!("**`{file}`**"))
            .unwrap_or_else(|| panic!("README.md has no block under **`{file}`**"));
        let path = root.join("examples/getting-started").join(file);
        let actual = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            shown,
            actual,
            "README.md's block under **`{file}`** differs from {}: update one from the other",
            path.display()
        );
    }
}

#[test]
fn the_test_shown_is_one_of_the_apps_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let shown = block_after(&readme, "**`tests/greeter.rs`**").expect("a block under the test");
    let tests =
        std::fs::read_to_string(root.join("examples/getting-started/tests/greeter.rs")).unwrap();
    assert!(
        tests.contains(&shown),
        "README.md's excerpt of tests/greeter.rs is not in the file:\n{shown}"
    );
}
