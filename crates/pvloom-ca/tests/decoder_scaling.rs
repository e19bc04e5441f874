//! Decoding N queued messages must cost O(N): payloads are views of the
//! receive buffer and consuming a message never moves the rest of it.

use std::time::{Duration, Instant};

use pvloom_ca::proto::constants::ECA_NORMAL;
use pvloom_ca::proto::{Command, DbrData, DbrType, FrameDecoder, Role, Value};

fn small_reply(ioid: u32) -> Vec<u8> {
    Command::read_notify_response(
        ioid,
        ECA_NORMAL,
        DbrType::Double,
        &DbrData::plain(Value::Double(vec![f64::from(ioid)])),
    )
    .unwrap()
    .to_bytes()
    .unwrap()
    .to_vec()
}

fn queued(count: u32) -> Vec<u8> {
    (0..count).flat_map(small_reply).collect()
}

#[test]
fn ten_thousand_messages_are_sliced_not_copied() {
    let stream = queued(10_000);
    let mut decoder = FrameDecoder::default();
    decoder.push(&stream);
    let start = decoder.buffer_mut().as_ptr() as usize;
    let end = start + decoder.buffered();
    let mut consumed = 0usize;
    let mut frames = 0u32;
    while let Some(frame) = decoder.next_frame().unwrap() {
        consumed += 16 + frame.payload.len();
        let at = frame.payload.as_ptr() as usize;
        // The payload is the very bytes pushed, at their original address.
        assert_eq!(at, start + consumed - frame.payload.len());
        assert!(at + frame.payload.len() <= end);
        // The unconsumed rest was not moved either.
        if decoder.buffered() > 0 {
            assert_eq!(decoder.buffer_mut().as_ptr() as usize, start + consumed);
        }
        let command = Command::decode(&frame, Role::Client, pvloom_ca::proto::Transport::Tcp).unwrap();
        let Command::ReadNotifyResponse { ioid, .. } = command else {
            panic!("unexpected {command:?}");
        };
        assert_eq!(ioid, frames);
        frames += 1;
    }
    assert_eq!(frames, 10_000);
    assert_eq!(consumed, stream.len());
}

fn decode_all(stream: &[u8]) -> Duration {
    let mut decoder = FrameDecoder::default();
    decoder.push(stream);
    let started = Instant::now();
    let mut count = 0;
    while let Some(command) = decoder.next_command(Role::Client).unwrap() {
        std::hint::black_box(&command);
        count += 1;
    }
    assert!(count > 0);
    started.elapsed()
}

fn fastest_of_three(stream: &[u8]) -> Duration {
    (0..3).map(|_| decode_all(stream)).min().unwrap()
}

/// A loose guard against quadratic behaviour: ten times the messages may
/// not take anywhere near a hundred times as long.
#[test]
fn decode_time_grows_linearly() {
    let small = queued(2_000);
    let large = queued(20_000);
    let small_time = fastest_of_three(&small).max(Duration::from_micros(50));
    let large_time = fastest_of_three(&large);
    assert!(large_time < small_time * 40, "2k messages: {small_time:?}, 20k messages: {large_time:?}");
}

#[test]
fn messages_split_across_pushes_are_reassembled() {
    let stream = queued(500);
    let mut decoder = FrameDecoder::default();
    let mut decoded = 0;
    for chunk in stream.chunks(37) {
        decoder.push(chunk);
        while decoder.next_frame().unwrap().is_some() {
            decoded += 1;
        }
    }
    assert_eq!(decoded, 500);
    assert_eq!(decoder.buffered(), 0);
}
