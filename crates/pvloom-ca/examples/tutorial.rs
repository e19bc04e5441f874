//! caproto's threading-client tutorial, step by step, with pvloom's Rust client.
//!
//! Start caproto's demo IOC first: `python -m caproto.ioc_examples.random_walk`,
//! then `cargo run -p pvloom-ca --example tutorial`.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pvloom_ca::client::{Batch, CaResult, Context, DbrClass, ReadOptions, SubscribeOptions, WriteOptions};

/// Every step of the tutorial; returns the values the subscription saw.
pub fn tutorial(ctx: &Context, prefix: &str) -> CaResult<Vec<f64>> {
    // Connect: get_pvs returns at once; searching and connecting go on in the background.
    let pvs = ctx.get_pvs(&[&format!("{prefix}x"), &format!("{prefix}dt")]);
    let (x, dt) = (&pvs[0], &pvs[1]);

    // Read: plain by default, richer types on request.
    let res = dt.read()?;
    println!("{} = {:?}", dt.name(), res.value());
    let richer = dt.read_with(ReadOptions::class(DbrClass::Time))?;
    println!("timestamp {:?}, alarm {:?}", richer.timestamp(), richer.alarm());

    // Write: with notify and wait (the default), without waiting, or with a callback.
    dt.write(0.1)?;
    dt.write_with(0.1, WriteOptions { notify: false, ..Default::default() })?;
    dt.write_async(0.1, WriteOptions::default()).then(|outcome| println!("write completed: {outcome:?}"));

    // Subscribe: the subscription starts with its first callback.
    let sub = x.subscribe(SubscribeOptions::default());
    let values = Arc::new(Mutex::new(Vec::new()));
    let seen = values.clone();
    let token = sub.add_callback(move |update| {
        println!("update from {}: {:?}", update.data_type, update.value());
        seen.lock().extend(update.as_f64s().unwrap_or_default());
    });
    std::thread::sleep(Duration::from_millis(500));
    // Dropping the handle (or remove_callback / clear) ends the subscription.
    drop(token);

    // Batched requests: issued together when the batch goes out of scope.
    let results = Arc::new(Mutex::new(Vec::new()));
    {
        let batch = Batch::new();
        for pv in &pvs {
            let (results, name) = (results.clone(), pv.name().to_owned());
            batch.read(pv, move |reading| results.lock().push((name, reading.map(|r| r.value().clone()))));
        }
    }

    // Go idle: the PV disconnects and reconnects by itself on its next use.
    x.go_idle();
    println!("after go_idle, read again: {:?}", x.read()?.value());

    // Server health: time since each server was last heard from.
    println!("last heard: {:?}", x.time_since_last_heard());
    let collected = values.lock().clone();
    Ok(collected)
}

#[allow(dead_code)]
fn main() -> CaResult<()> {
    let ctx = Context::new()?;
    let values = tutorial(&ctx, "random_walk:")?;
    println!("the subscription saw {} values", values.len());
    Ok(())
}
