//! The remote table on virtual time: reconnect blocking, the last handshake winning
//! a race, and the collection of idle remotes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use pvloom_chirp::remote::TableEvent;
use pvloom_chirp::{Config, RemoteKey, RemoteTable};

fn table(now: Instant, seed: u64) -> RemoteTable<u32> {
    RemoteTable::new(now, Config::default().limits().unwrap(), fastrand::Rng::with_seed(seed))
}

fn key(port: u16) -> RemoteKey {
    RemoteKey::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

#[test]
fn a_lost_connection_blocks_the_remote_for_50_to_550_ms() {
    let now = Instant::now();
    let mut shortest = Duration::MAX;
    let mut longest = Duration::ZERO;
    for seed in 0..200 {
        let mut table = table(now, seed);
        table.connecting(now, key(3000), 1);
        let until = table.connection_lost(now, &key(3000), &1).expect("blocked");
        let block = until - now;
        assert!(block >= Duration::from_millis(50) && block < Duration::from_millis(550), "{block:?}");
        shortest = shortest.min(block);
        longest = longest.max(block);
        assert_eq!(table.connection(&key(3000)), None);
        assert_eq!(table.blocked_until(&key(3000), now), Some(until));
        assert_eq!(table.poll_timeout(), Some(until), "the block is the next deadline");
        let just_before = until - Duration::from_millis(1);
        assert!(table.handle_timeout(just_before).is_empty());
        assert_eq!(table.handle_timeout(until), [TableEvent::Unblocked(key(3000))]);
        assert_eq!(table.blocked_until(&key(3000), until), None);
    }
    assert!(shortest < Duration::from_millis(100) && longest > Duration::from_millis(500), "random over the range");
}

#[test]
fn the_last_handshake_wins_a_race() {
    let now = Instant::now();
    let mut table = table(now, 1);
    // We connect (conn 1) while the remote connects to us (conn 2).
    assert_eq!(table.connecting(now, key(3000), 1), None);
    assert_eq!(table.handshake(now, key(3000), 2), Some(1), "conn 1 is replaced and retired");
    assert_eq!(table.handshake(now, key(3000), 1), Some(2), "then conn 1's handshake completes: it wins");
    assert_eq!(table.connection(&key(3000)), Some(&1));
    // The loser closing does not disturb the winner or block the remote.
    assert_eq!(table.connection_lost(now, &key(3000), &2), None);
    assert_eq!(table.connection(&key(3000)), Some(&1));
    assert_eq!(table.blocked_until(&key(3000), now), None);
    // The same handshake again replaces nothing.
    assert_eq!(table.handshake(now, key(3000), 1), None);
}

#[test]
fn remotes_are_keyed_by_family_address_and_port() {
    assert_ne!(key(3000), key(3001));
    let v6 = RemoteKey::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 3000);
    assert_ne!(v6, key(3000));
    let mapped = RemoteKey::new(IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()), 3000);
    assert_eq!(mapped, key(3000), "an IPv4-mapped address is the IPv4 remote");
}

#[test]
fn idle_remotes_are_collected_with_their_connection() {
    let start = Instant::now();
    let mut table = table(start, 7);
    table.handshake(start, key(3000), 1);
    table.touch(start, key(3001));
    let (now, collected) = loop {
        let now = table.poll_timeout().unwrap();
        let events = table.handle_timeout(now);
        if !events.is_empty() {
            break (now, events);
        }
        // Keep 3001 busy: only 3000 goes idle.
        table.touch(now, key(3001));
    };
    assert_eq!(collected, [TableEvent::Collected(key(3000), Some(1))]);
    let idle = now - start;
    assert!(idle > Duration::from_secs(30) && idle <= Duration::from_secs(60), "{idle:?}");
    assert_eq!(table.len(), 1);
}

#[test]
fn a_remote_that_lost_a_connection_is_reconnected_not_connected() {
    let now = Instant::now();
    let mut table = table(now, 3);
    table.connecting(now, key(3000), 1);
    assert!(!table.lost_one(&key(3000)), "a first connection");
    let until = table.connection_lost(now, &key(3000), &1).unwrap();
    assert!(table.lost_one(&key(3000)));
    table.handle_timeout(until);
    assert!(table.lost_one(&key(3000)), "still after the block ended");
    table.connecting(until, key(3000), 2);
    assert!(table.lost_one(&key(3000)), "the second connection is a reconnect");
    assert!(!table.lost_one(&key(3001)), "unknown remotes lost nothing");
}
