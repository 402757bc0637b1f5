//! Stand-alone driver for the runtime CLI (the berth binary wires the same
//! function as `berth runtime`); used by the tests and the benchmark.
fn main() {
    std::process::exit(runtime::cli_main(std::env::args().collect()));
}
