// SPDX-License-Identifier: GPL-2.0

//! The kernel's LZ4 block decoder (`lib/lz4`), with which a load unpacks an instance's kernel
//! (`base/vmlinux.rs`).

use kernel::{bindings, prelude::*};

/// Decodes the LZ4 block `block` into `out`; the bytes written. `EINVAL` if the block is
/// malformed or its output does not fit `out`.
pub(crate) fn decode(block: &[u8], out: &mut [u8]) -> Result<usize> {
    let in_len = c_int::try_from(block.len()).map_err(|_| EINVAL)?;
    let out_len = c_int::try_from(out.len()).map_err(|_| EINVAL)?;
    // SAFETY: `block` is valid for reads of `in_len` bytes and `out` for writes of `out_len`
    // bytes. `LZ4_decompress_safe` never reads or writes outside them, whatever `block`
    // holds ("safe" is its guarantee against malformed input), and keeps no pointer.
    let written = unsafe {
        bindings::LZ4_decompress_safe(
            block.as_ptr().cast(),
            out.as_mut_ptr().cast(),
            in_len,
            out_len,
        )
    };
    usize::try_from(written).map_err(|_| EINVAL)
}
