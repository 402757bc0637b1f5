//! Link the `berth` binary as a fixed-address (non-PIE) executable.
//!
//! A position-independent berth carries about 30,000 relative relocations
//! (730 KiB of `.rela.dyn`) that the dynamic loader applies at every exec,
//! writing every page of the 530 KiB `.data.rel.ro`: about 1-2 ms of each
//! `run` (the CLI and the monitor it starts both paid it) and most of a
//! monitor's private memory. Linked at a fixed address those pointers are
//! resolved by the linker, so the pages stay clean and shared. The cost is
//! ASLR for berth's own code (libraries, heap and stack stay randomised),
//! as for runc and other Go binaries, which are not PIE either.
//!
//! A `crt-static` build (`make static`) is left as rustc links it
//! (static-pie): it has no loader to save.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if !features.split(',').any(|f| f == "crt-static") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
