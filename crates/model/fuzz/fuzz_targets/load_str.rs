//! Fuzz target: the manifest loader must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(diags) = model::load_str("fuzz.yaml", text) {
            let _ = diags.to_string();
        }
    }
});
