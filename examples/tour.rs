//! A tour of weft's core: spawn and join, sleep, scope, park/unpark, panics, and a runtime of
//! your own. Run it with `cargo run --release --example tour`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    // 1. Spawn and join, as with threads, but ten thousand of them is nothing.
    let start = Instant::now();
    let handles: Vec<_> = (0..10_000u64).map(|i| weft::spawn(move || i * 2)).collect();
    let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    println!("spawn/join: 10,000 coroutines summed to {sum} in {:?}", start.elapsed());

    // 2. Sleep parks only the coroutine: 10,000 sleeps of 100 ms take about 100 ms in all.
    let start = Instant::now();
    let sleepers: Vec<_> =
        (0..10_000).map(|_| weft::spawn(|| weft::sleep(Duration::from_millis(100)))).collect();
    sleepers.into_iter().for_each(|h| h.join().unwrap());
    println!("sleep: 10,000 coroutines slept 100 ms each; wall time {:?}", start.elapsed());

    // 3. Scoped coroutines borrow from the caller's stack.
    let words = ["stackful", "coroutines", "for", "rust"];
    let letters = AtomicUsize::new(0);
    weft::scope(|s| {
        for word in &words {
            s.spawn(|| letters.fetch_add(word.len(), Ordering::Relaxed));
        }
    });
    println!(
        "scope: {} letters counted by {} scoped coroutines",
        letters.into_inner(),
        words.len()
    );

    // 4. park/unpark, with std::thread's semantics.
    let ready = Arc::new(AtomicBool::new(false));
    let flag = ready.clone();
    let waiter = weft::Builder::new().name("waiter".into()).spawn(move || {
        while !flag.load(Ordering::Acquire) {
            weft::park();
        }
        weft::current().name().map(str::to_owned)
    })?;
    ready.store(true, Ordering::Release);
    waiter.coroutine().unpark();
    println!("park: coroutine {:?} was unparked", waiter.join().unwrap());

    // 5. A panic stays inside its coroutine; join hands back the payload.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // keep the tour's output tidy
    let crashed = weft::spawn(|| -> u32 { panic!("deliberate") }).join();
    std::panic::set_hook(previous);
    let payload = crashed.unwrap_err();
    println!(
        "panic: join returned Err({:?}); the runtime lives on",
        payload.downcast_ref::<&str>()
    );

    // 6. A runtime of your own, with its metrics; dropping it cancels what is still parked.
    let rt = weft::Runtime::builder().workers(2).stack_size(32 * 1024).build()?;
    let forever = rt.spawn(|| weft::sleep(Duration::from_secs(3600)));
    let total = rt.block_on(|| {
        let parts: Vec<_> = (0..100u64).map(|i| weft::spawn(move || i)).collect();
        parts.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    let m = rt.metrics();
    println!(
        "runtime: block_on gave {total}; {} workers, {} switches, {} coroutines alive",
        m.workers.len(),
        m.workers.iter().map(|w| w.switches).sum::<u64>(),
        m.alive
    );
    let start = Instant::now();
    drop(rt);
    forever.join().unwrap();
    println!("shutdown: the hour-long sleeper was cancelled in {:?}", start.elapsed());
    Ok(())
}
