//! Any text as a migration (TOML, and SQL in each dialect), an expression or a database URL: no panic,
//! whatever parses survives its stored form, and a redacted URL never holds more than the original.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerodown::spec::analyze_expr;
use zerodown::{DatabaseUrl, Dialect, Migration};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql] {
        if let Ok(m) = Migration::from_sql("m", text, dialect, "fuzz") {
            let stored = m.canonical_toml();
            assert_eq!(Migration::from_toml("m", &stored, "stored").unwrap(), m);
        }
        let _ = analyze_expr(text, dialect, "fuzz");
    }
    if let Ok(m) = Migration::from_toml("m", text, "fuzz") {
        let stored = m.canonical_toml();
        assert_eq!(Migration::from_toml("m", &stored, "stored").unwrap(), m);
    }
    let _ = DatabaseUrl::parse(text);
    let _ = zerodown::url::redact(text);
});
