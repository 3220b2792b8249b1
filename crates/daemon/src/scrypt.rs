//! scrypt (RFC 7914), for key files. The `scrypt` crate refuses `n ≥ 2^(16 r)`, a bound of the RFC
//! that geth and Python's `eth-account` do not apply: the latter writes `n = 2^18, r = 1` by default,
//! so a reader of every key file those tools write needs its own.

use pbkdf2::pbkdf2_hmac;
use sha2::Sha256;

/// Derives `out.len()` bytes from `password` and `salt` with cost `n = 2^log_n`, block size `r` and
/// parallelism `p`. The caller bounds the parameters (memory is `128 · r · n` bytes).
pub(crate) fn scrypt(password: &[u8], salt: &[u8], log_n: u8, r: usize, p: usize, out: &mut [u8]) {
    let n = 1usize << log_n;
    let words = 32 * r;
    let mut b = vec![0u8; p * 128 * r];
    pbkdf2_hmac::<Sha256>(password, salt, 1, &mut b);
    let mut v = vec![0u32; n * words];
    let mut x = vec![0u32; words];
    let mut y = vec![0u32; words];
    for chunk in b.chunks_mut(128 * r) {
        for (w, c) in x.iter_mut().zip(chunk.chunks_exact(4)) {
            *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 0..n {
            v[i * words..(i + 1) * words].copy_from_slice(&x);
            block_mix(&x, &mut y, r);
            std::mem::swap(&mut x, &mut y);
        }
        for _ in 0..n {
            let j = (x[(2 * r - 1) * 16] as usize) & (n - 1);
            for (a, b) in x.iter_mut().zip(&v[j * words..(j + 1) * words]) {
                *a ^= b;
            }
            block_mix(&x, &mut y, r);
            std::mem::swap(&mut x, &mut y);
        }
        for (w, c) in x.iter().zip(chunk.chunks_exact_mut(4)) {
            c.copy_from_slice(&w.to_le_bytes());
        }
    }
    pbkdf2_hmac::<Sha256>(password, &b, 1, out);
    zeroize::Zeroize::zeroize(&mut b);
    zeroize::Zeroize::zeroize(&mut v);
    zeroize::Zeroize::zeroize(&mut x);
}

/// scryptBlockMix: `2r` 64-byte blocks through Salsa20/8, even results first, then odd ones.
fn block_mix(input: &[u32], out: &mut [u32], r: usize) {
    let mut x = [0u32; 16];
    x.copy_from_slice(&input[(2 * r - 1) * 16..2 * r * 16]);
    for i in 0..2 * r {
        for (a, b) in x.iter_mut().zip(&input[i * 16..i * 16 + 16]) {
            *a ^= b;
        }
        salsa20_8(&mut x);
        let at = if i % 2 == 0 { i / 2 } else { r + i / 2 };
        out[at * 16..at * 16 + 16].copy_from_slice(&x);
    }
}

/// The Salsa20/8 core.
fn salsa20_8(b: &mut [u32; 16]) {
    let mut x = *b;
    let quarter = |x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize| {
        x[b] ^= x[a].wrapping_add(x[d]).rotate_left(7);
        x[c] ^= x[b].wrapping_add(x[a]).rotate_left(9);
        x[d] ^= x[c].wrapping_add(x[b]).rotate_left(13);
        x[a] ^= x[d].wrapping_add(x[c]).rotate_left(18);
    };
    for _ in 0..4 {
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 5, 9, 13, 1);
        quarter(&mut x, 10, 14, 2, 6);
        quarter(&mut x, 15, 3, 7, 11);
        quarter(&mut x, 0, 1, 2, 3);
        quarter(&mut x, 5, 6, 7, 4);
        quarter(&mut x, 10, 11, 8, 9);
        quarter(&mut x, 15, 12, 13, 14);
    }
    for (a, b) in b.iter_mut().zip(x) {
        *a = a.wrapping_add(b);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc_7914_vector() {
        let mut out = [0u8; 64];
        scrypt(b"", b"", 4, 1, 1, &mut out);
        assert_eq!(
            hex::encode(out),
            "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442\
             fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"
        );
    }

    #[test]
    fn agrees_with_the_scrypt_crate_where_it_applies() {
        for (log_n, r, p, len) in [
            (10u8, 8u32, 16u32, 64usize),
            (12, 8, 6, 32),
            (8, 1, 3, 40),
            (13, 2, 1, 32),
        ] {
            let mut ours = vec![0u8; len];
            let mut theirs = vec![0u8; len];
            scrypt(b"password", b"NaCl", log_n, r as usize, p as usize, &mut ours);
            let params = ::scrypt::Params::new(log_n, r, p, len).unwrap();
            ::scrypt::scrypt(b"password", b"NaCl", &params, &mut theirs).unwrap();
            assert_eq!(ours, theirs, "log_n {log_n} r {r} p {p}");
        }
    }
}
