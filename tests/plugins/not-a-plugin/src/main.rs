//! A WASI command (it exports `wasi:cli/run`), not a Switchyard plugin.

fn main() {
    println!("hello from a command");
}
