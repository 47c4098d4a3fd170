//! The guide's "Getting started" chapter (`src/guide/getting_started.md`) shows the files of
//! `examples/getting-started/`, which CI builds and tests: this keeps the two the same, so the
//! chapter cannot rot. Its Rust blocks are doctests too: the lines rustdoc hides (`# ...`),
//! which stand in for what the doctest lacks (`OUT_DIR`, the app's library), are not part of
//! what the reader sees, so they are left out of the comparison. (The README's and the
//! guide's other Rust blocks are compiled as doctests: see `src/lib.rs` and `src/guide/`.)

use std::path::Path;

/// The files the section shows in full, each under a `**`<path>`**` heading.
const SHOWN_IN_FULL: [&str; 4] = [
    "proto/greeter.proto",
    "build.rs",
    "src/lib.rs",
    "src/main.rs",
];

/// The chapter, as the repository holds it.
const CHAPTER: &str = "src/guide/getting_started.md";

/// The first fenced block after the line that starts with `heading`, as rustdoc shows it:
/// in a Rust block, the lines it hides (`# ...` and a lone `#`) are left out.
fn block_after(chapter: &str, heading: &str) -> Option<String> {
    let mut lines = chapter
        .lines()
        .skip_while(|line| !line.starts_with(heading));
    lines.next()?;
    let mut lines = lines.skip_while(|line| !line.starts_with("```"));
    let rust = lines.next()?.starts_with("```rust");
    let hidden = |line: &str| {
        let line = line.trim();
        rust && (line == "#" || line.starts_with("# "))
    };
    let body: Vec<&str> = lines
        .take_while(|line| !line.starts_with("```"))
        .filter(|line| !hidden(line))
        .collect();
    Some(body.iter().map(|line| format!("{line}\n")).collect())
}

#[test]
fn the_getting_started_chapter_shows_the_app_file_for_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chapter = std::fs::read_to_string(root.join(CHAPTER)).unwrap();
    for file in SHOWN_IN_FULL {
        let shown = block_after(&chapter, &format!("**`{file}`**"))
            .unwrap_or_else(|| panic!("{CHAPTER} has no block under **`{file}`**"));
        let path = root.join("examples/getting-started").join(file);
        let actual = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            shown,
            actual,
            "{CHAPTER}'s block under **`{file}`** differs from {}: update one from the other",
            path.display()
        );
    }
}

#[test]
fn the_test_shown_is_one_of_the_apps_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chapter = std::fs::read_to_string(root.join(CHAPTER)).unwrap();
    let shown = block_after(&chapter, "**`tests/greeter.rs`**").expect("a block under the test");
    let tests =
        std::fs::read_to_string(root.join("examples/getting-started/tests/greeter.rs")).unwrap();
    assert!(
        tests.contains(&shown),
        "{CHAPTER}'s excerpt of tests/greeter.rs is not in the file:\n{shown}"
    );
}
