//! The `fastllm-convert` binary: everything lives in the umbrella library, which links the
//! enabled format families.

fn main() -> std::process::ExitCode {
    fastllm_convert::cli::main()
}
