//! `fc-emulator`: a Firecracker v1.16 API stand-in for tests. See `docs/emulator.md`.

fn main() {
    if let Some(code) = firework_emulator::guest::stage_main() {
        std::process::exit(code);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = firework_emulator::process::run(args);
    std::process::exit(code);
}
