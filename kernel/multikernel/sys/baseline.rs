// SPDX-License-Identifier: GPL-2.0

//! What a same-kernel cross-CPU exchange costs on this machine, to compare the inter-kernel
//! channel with (`/sys/kernel/multikernel/ikc_baseline`).

use core::hint::black_box;
use kernel::{
    bindings,
    cpu::CpuId,
    error::to_result,
    prelude::*,
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
};

extern "C" fn nothing(_info: *mut c_void) {}

/// One round trip of an empty function call on `cpu`, waited for
/// (`smp_call_function_single`): the IPI there and the completion back. `ENXIO` if `cpu`
/// is offline.
pub(crate) fn call_round_trip(cpu: CpuId) -> Result<Delta> {
    let start = Instant::<Monotonic>::now();
    // SAFETY: `nothing` ignores its argument; `wait` makes the call return after it ran.
    to_result(unsafe {
        bindings::smp_call_function_single(
            cpu.as_u32() as c_int,
            Some(nothing),
            core::ptr::null_mut(),
            true,
        )
    })?;
    Ok(start.elapsed())
}

/// One round trip of an empty function call to an online CPU other than this one that is
/// idle (`idle_cpu()`): the IPI has to wake it, as a doorbell wakes an instance's idle CPU,
/// and the caller spins for the answer, as `ping` does. The CPU and the nanoseconds; `ENXIO`
/// if no other CPU is idle.
pub(crate) fn idle_call_round_trip() -> Result<(u32, i64)> {
    let here = CpuId::current().as_u32();
    for cpu in (0..kernel::cpu::nr_cpu_ids()).filter(|&c| c != here) {
        // SAFETY: `idle_cpu` reads the run queue of any possible CPU without locks; on x86
        // every id below `nr_cpu_ids` is possible (`prefill_possible_map()`).
        if unsafe { bindings::idle_cpu(cpu as c_int) } == 0 {
            continue;
        }
        let Some(id) = CpuId::from_u32(cpu) else {
            continue;
        };
        // Offline (an instance's CPU, say): the next. Had this task moved to `cpu` meanwhile
        // (it is preemptible), the call ran here, with no IPI: not a measurement.
        match call_round_trip(id) {
            Ok(t) if CpuId::current().as_u32() != cpu => return Ok((cpu, t.as_nanos())),
            _ => continue,
        }
    }
    Err(ENXIO)
}

/// In-kernel costs of the same exchanges, medians, in nanoseconds.
pub(crate) struct Baseline {
    pub(crate) call_ns: i64,
    pub(crate) memcpy_64_ns: i64,
    pub(crate) memcpy_4096_ns: i64,
}

const BASELINE_ROUNDS: usize = 101;

fn median(samples: &mut [i64]) -> i64 {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Measures [`Baseline`]: a cross-CPU function call round trip to another online CPU, and
/// copies of 64 bytes and 4 KiB (each the median of [`BASELINE_ROUNDS`] samples; copies timed
/// in batches of 1000 to rise above the clock's resolution).
pub(crate) fn measure() -> Result<Baseline> {
    let mut samples = KVec::from_elem(0i64, BASELINE_ROUNDS, GFP_KERNEL)?;
    let here = CpuId::current().as_u32();
    let target = (0..kernel::cpu::nr_cpu_ids())
        .filter(|&c| c != here)
        .filter_map(CpuId::from_u32)
        .find(|&c| call_round_trip(c).is_ok())
        .ok_or(ENXIO)?;
    for s in samples.iter_mut() {
        *s = call_round_trip(target)?.as_nanos();
    }
    let call_ns = median(&mut samples);
    let src = KVec::from_elem(0x5au8, 4096, GFP_KERNEL)?;
    let mut dst = KVec::from_elem(0u8, 4096, GFP_KERNEL)?;
    let mut copies = |len: usize, samples: &mut [i64]| {
        for s in samples.iter_mut() {
            let start = Instant::<Monotonic>::now();
            for _ in 0..1000 {
                black_box(&mut dst[..len]).copy_from_slice(black_box(&src[..len]));
            }
            *s = start.elapsed().as_nanos() / 1000;
        }
        median(samples)
    };
    let memcpy_64_ns = copies(64, &mut samples);
    let memcpy_4096_ns = copies(4096, &mut samples);
    Ok(Baseline {
        call_ns,
        memcpy_64_ns,
        memcpy_4096_ns,
    })
}
