#![no_main]
//! Any template text must parse or fail with an error; rendering any parsed
//! template against a representative image object must never panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = gotemplate::Template::parse(src) else {
        return;
    };
    let value = serde_json::json!({
        "Id": "sha256:0123",
        "RepoTags": ["a:1", "b:2"],
        "Size": 1234,
        "Ratio": 0.25,
        "Config": {"Labels": {"k": "v"}, "Env": ["A=1"], "Cmd": null},
        "Flag": true
    });
    let _ = t.render(&value);
});
