//! A channel that misbehaves on purpose. Its config picks how:
//! `{"mode": "loop" | "memory-bomb" | "recursion" | "trap" | "fetch" | "ok", "url": "..."}`.

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
            _ => Outcome::delivered(),
        }
    }
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
