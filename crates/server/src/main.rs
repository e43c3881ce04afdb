//! The `cfactory` binary.

fn main() {
    eprintln!("cfactory: the server is not built yet");
    std::process::exit(2);
}
