//! A channel that misbehaves on purpose. Its config picks how:
//! `{"mode": "loop" | "memory-bomb" | "recursion" | "trap" | "fetch" | "ambient" | "ok",
//! "url": "..."}`.

use std::hint::black_box;

use serde::Deserialize;
use switchyard_sdk::{Channel, Delivery, HttpRequest, Outcome, export_channel};

#[derive(Deserialize)]
struct Config {
    mode: String,
    #[serde(default)]
    url: String,
}

struct Hostile;

impl Channel for Hostile {
    fn deliver(delivery: Delivery) -> Outcome {
        let config: Config = match switchyard_sdk::config() {
            Ok(config) => config,
            Err(problem) => return Outcome::failed(problem),
        };
        match config.mode.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            "recursion" => Outcome::retry(format!("{}", recurse(delivery.attempt.into()))),
            "trap" => panic!("this plugin always panics"),
            "fetch" => match HttpRequest::get(&config.url).send() {
                Ok(response) => Outcome::delivered_with(Some(response.status), None),
                Err(error) => Outcome::failed(error.describe()),
            },
            "ambient" => Outcome::delivered_with(None, Some(ambient())),
            _ => Outcome::delivered(),
        }
    }
}

/// Reaches for what a sandboxed plugin must not have and reports what it found.
fn ambient() -> String {
    let env = std::env::vars().count();
    let root = std::fs::read_dir("/")
        .map(|d| d.count())
        .map_err(|e| e.kind());
    let socket = std::net::TcpStream::connect("127.0.0.1:80").map_err(|e| e.kind());
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX);
    format!(
        "env={env} root={root:?} socket={:?} clock={clock}",
        socket.map(|_| ())
    )
}

/// Recurses until the stack runs out; the argument keeps the compiler from seeing that.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 16]);
    if black_box(depth) == u64::MAX {
        return frame[0];
    }
    recurse(depth + 1).wrapping_add(frame[1])
}

export_channel!(Hostile);
