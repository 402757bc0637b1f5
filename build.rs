//! Link the `berth` binary as a fixed-address (non-PIE) executable.
//!
//! A position-independent berth carries about 30,000 relative relocations
//! (730 KiB of `.rela.dyn`) that the dynamic loader applies at every exec,
//! writing every page of the 530 KiB `.data.rel.ro`: about 1-2 ms of each
//! `run` (the CLI and the monitor it starts both pay it) and most of a
//! monitor's private memory. Linked at a fixed address those pointers are
//! resolved by the linker, so the pages stay clean and shared. The cost is
//! ASLR for berth's own code (libraries, heap and stack stay randomised),
//! as for runc and other Go binaries, which are not PIE either.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
}
