//! What madsim itself costs for a run's timers and network payloads, with no engine, no
//! checker and no oracle: the floor under any seed's cost.
//!
//! `cargo bench -p snapsim-sim --bench madsim_floor -- [WAKES] [PAYLOADS] [SEEDS]`
//!
//! Two nodes wake on a timer every virtual millisecond (`WAKES` wakes between them) and send
//! `PAYLOADS` payloads in all, spread evenly over their wakes, to each other and to a third
//! node. The defaults are what a keyed-agg seed under its default fault profile does: about
//! 6,200 timer wakes (the TaskManagers read their sources every millisecond for the ~3.1 s
//! the job runs) and about 3,500 payloads (one batch in flight per link).

use madsim::net::Endpoint;
use madsim::runtime::{Handle, Runtime};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICKING: [u8; 2] = [1, 2];
const SILENT: u8 = 3;

fn address(node: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, node], 7000))
}

/// A ticking node: `wakes` timer wakes, a payload to each peer on `payloads` of them.
async fn ticking(me: u8, wakes: u64, payloads: u64) {
    let endpoint = Arc::new(Endpoint::bind(address(me)).await.expect("binds once"));
    madsim::task::spawn(receive_all(endpoint.clone()));
    let peers = [TICKING[usize::from(me == 1)], SILENT];
    let mut sent = 0;
    for wake in 1..=wakes {
        madsim::time::sleep(Duration::from_millis(1)).await;
        // Evenly spread: send when the share of payloads due by this wake grows.
        if wake * payloads / wakes > sent {
            sent += 1;
            for peer in peers {
                let payload = Box::new(wake);
                endpoint.send_to_raw(address(peer), 1, payload).await.ok();
            }
        }
    }
}

/// A node that only receives.
async fn receiving(me: u8) {
    let endpoint = Endpoint::bind(address(me)).await.expect("binds once");
    receive_all(Arc::new(endpoint)).await
}

async fn receive_all(endpoint: Arc<Endpoint>) {
    while endpoint.recv_from_raw(1).await.is_ok() {}
}

fn one_seed(seed: u64, wakes: u64, payloads: u64) {
    let runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let handle = Handle::current();
        let per_node = (wakes / 2, payloads / 2 / 2);
        for me in TICKING.into_iter().chain([SILENT]) {
            let ip = address(me).ip();
            let node = handle.create_node().ip(ip);
            let node = if me == SILENT {
                node.init(move || receiving(me))
            } else {
                node.init(move || ticking(me, per_node.0, per_node.1))
            };
            node.build();
        }
        madsim::time::sleep(Duration::from_millis(per_node.0 + 10)).await;
    });
}

/// A benchmark measures the wall clock; the runs it measures never read it.
#[allow(clippy::disallowed_methods)]
fn wall_time(work: impl FnOnce()) -> Duration {
    let started = Instant::now();
    work();
    started.elapsed()
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut next = |default: u64| {
        args.next()
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let (wakes, payloads, seeds) = (next(6_200), next(3_500), next(40));
    let mut per_seed = Vec::new();
    for seed in 0..seeds {
        per_seed.push(wall_time(|| one_seed(seed, wakes, payloads)));
    }
    per_seed.sort();
    let median = per_seed[per_seed.len() / 2];
    println!(
        "madsim floor: {:.2} ms per seed (median of {seeds}) for {wakes} timer wakes and {payloads} payloads",
        median.as_secs_f64() * 1000.0
    );
}
