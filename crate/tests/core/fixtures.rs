//! WAT is the source of truth for fixtures; the digests of their compiled bytes are pinned in
//! `tests/fixtures/SHA256SUMS`, so a changed fixture (or a changed `wat` encoder) is noticed.
//! Regenerate with `BLESS=1 cargo test -p nestbox --test core fixtures`.

use std::fmt::Write as _;

use nestbox::Digest;

use crate::common::fixture;

#[test]
fn fixture_digests_are_pinned() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".wat").map(str::to_owned)
        })
        .collect();
    names.sort();
    let mut actual = String::new();
    for name in &names {
        let text = std::fs::read_to_string(format!("{dir}/{name}.wat")).expect("read");
        assert!(
            text.starts_with(";;"),
            "{name}.wat must start with a comment saying why it exists"
        );
        writeln!(
            actual,
            "{}  {name}.wasm",
            Digest::of(&fixture(name)).to_hex()
        )
        .expect("fmt");
    }
    let path = format!("{dir}/SHA256SUMS");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &actual).expect("write SHA256SUMS");
    }
    let pinned = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        pinned, actual,
        "fixture digests changed: rerun with BLESS=1 if intended"
    );
}
