//! tests/oci_validation_e2e.rs: the harness (lab: the wrapper, bundles,
//! TAP; inside: runtimetest's in-container checks) and the programs, one
//! test each, grouped as runtime-tools' validation/ is: lifecycle, hooks,
//! config fields, namespaces, cgroups.

mod cgroups;
mod config;
mod hooks;
pub mod inside;
pub mod lab;
mod lifecycle;
mod namespaces;

use lab::{Bundle, Lab, Tap};

/// util.RuntimeInsideValidate: run the bundle with the reporting script
/// as its process and compare what it saw with config.json.
pub fn inside_validate(name: &'static str, lab: &mut Lab, mut b: Bundle) {
    let mut t = Tap::new(name);
    let script = inside::script(&b.config);
    b.config["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    b.write();
    match lab.run_to_stop(&b, name) {
        Ok(out) => inside::check(&mut t, &b.config, &out),
        Err(e) => t.ok(false, "the container runs to its end", e),
    }
    t.finish();
}
