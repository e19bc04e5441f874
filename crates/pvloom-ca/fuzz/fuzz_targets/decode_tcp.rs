//! Arbitrary bytes into the TCP stream decoder and the circuit, both roles.
//!
//! The first byte picks how the input is cut into pushes, so partial
//! headers and payloads split across reads are exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvloom_ca::proto::{Circuit, CircuitConfig, DecoderConfig, FrameDecoder, Role};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut).max(1);
    let decoder_config = DecoderConfig { max_payload: 1 << 20, require_alignment: cut & 1 == 0 };
    for role in [Role::Client, Role::Server] {
        let mut decoder = FrameDecoder::new(decoder_config);
        let mut circuit =
            Circuit::with_config(role, CircuitConfig { decoder: decoder_config, ..CircuitConfig::default() });
        for piece in input.chunks(chunk) {
            decoder.push(piece);
            loop {
                match decoder.next_command(role) {
                    Ok(Some(command)) => {
                        let _ = command.data();
                        let _ = command.to_bytes();
                    }
                    Ok(None) => break,
                    Err(error) if error.is_fatal() => break,
                    Err(_) => {}
                }
            }
            circuit.recv(piece);
            loop {
                match circuit.poll_event() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(error) if error.is_fatal() => break,
                    Err(_) => {}
                }
            }
        }
    }
});
