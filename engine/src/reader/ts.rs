//! Timestamp arithmetic bit-for-bit as Python does it.
//!
//! Python divides integers exactly and rounds once (`int / int` is correctly rounded, even for
//! `10**127`); the pcapng reader divides a 64-bit tick count by `10**res` or `2**res` for any
//! `if_tsresol` byte. [`div_ticks`] gives the same correctly rounded quotient: a plain `f64`
//! division when both operands are exact doubles, 128-bit integer division otherwise, and a
//! small restoring division for denominators beyond 64 bits (only hostile files have those).

/// Timestamp units per second of a pcapng interface: `10**k` or `2**k` (k < 128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Units {
    Pow10(u32),
    Pow2(u32),
}

/// `2.0 ** -e` for `0 <= e <= 1022`, exactly.
#[inline]
fn pow2_neg(e: u32) -> f64 {
    f64::from_bits(u64::from(1023 - e.min(1022)) << 52)
}

/// Correctly rounded `n / d` for `d >= 1` (Python's `n / d` on ints).
#[inline]
pub fn div_u64(n: u64, d: u64) -> f64 {
    const EXACT: u64 = 1 << 53;
    if n <= EXACT && d <= EXACT {
        return n as f64 / d as f64;
    }
    if n == 0 || d == 0 {
        return 0.0;
    }
    // Scale n so its top bit is bit 127: the quotient then has at least 64 bits, and folding a
    // non-zero remainder into its lowest bit makes the conversion round exactly once.
    let shift = n.leading_zeros() + 64;
    let a = u128::from(n) << shift;
    let d = u128::from(d);
    let q = a / d;
    let sticky = u128::from(!a.is_multiple_of(d));
    (q | sticky) as f64 * pow2_neg(shift)
}

/// Correctly rounded `n / 5**k` for `5**k` beyond 64 bits (bitwise restoring division).
fn div_pow5_big(n: u64, k: u32) -> f64 {
    if n == 0 {
        return 0.0;
    }
    // d = 5**k, little-endian 32-bit limbs.
    let mut d: Vec<u32> = vec![1];
    for _ in 0..k {
        let mut carry = 0u64;
        for limb in d.iter_mut() {
            let v = u64::from(*limb) * 5 + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            d.push(carry as u32);
        }
    }
    let top = d.last().copied().unwrap_or(1);
    let dbits = 32 * (d.len() as u32 - 1) + (32 - top.leading_zeros());
    let nbits = 64 - n.leading_zeros();
    // A = n << s with bit length dbits + 64: the quotient has 64 or 65 bits.
    let s = dbits + 64 - nbits;
    let mut r: Vec<u32> = vec![0; d.len() + 1];
    let mut q: u128 = 0;
    for i in (0..nbits + s).rev() {
        let bit = if i >= s {
            ((n >> (i - s)) & 1) as u32
        } else {
            0
        };
        // r = 2r + bit
        let mut carry = bit;
        for limb in r.iter_mut() {
            let next = *limb >> 31;
            *limb = (*limb << 1) | carry;
            carry = next;
        }
        q <<= 1;
        if !less(&r, &d) {
            sub(&mut r, &d);
            q |= 1;
        }
    }
    let sticky = u128::from(r.iter().any(|&l| l != 0));
    (q | sticky) as f64 * pow2_neg(s)
}

fn less(r: &[u32], d: &[u32]) -> bool {
    for i in (0..r.len()).rev() {
        let a = r.get(i).copied().unwrap_or(0);
        let b = d.get(i).copied().unwrap_or(0);
        if a != b {
            return a < b;
        }
    }
    false
}

fn sub(r: &mut [u32], d: &[u32]) {
    let mut borrow = 0i64;
    for (i, limb) in r.iter_mut().enumerate() {
        let v = i64::from(*limb) - i64::from(d.get(i).copied().unwrap_or(0)) - borrow;
        borrow = i64::from(v < 0);
        *limb = v.rem_euclid(1 << 32) as u32;
    }
}

/// Python's `ticks / units` (float), correctly rounded.
#[inline]
pub fn div_ticks(n: u64, units: Units) -> f64 {
    match units {
        // n rounds once to a double; a power-of-two scaling of a normal double is exact.
        Units::Pow2(k) => n as f64 * pow2_neg(k),
        Units::Pow10(k) if k <= 19 => div_u64(n, 10u64.pow(k)),
        // n / 10**k = (n / 5**k) * 2**-k, the scaling exact (the result stays normal).
        Units::Pow10(k) if k <= 27 => div_u64(n, 5u64.pow(k)) * pow2_neg(k),
        Units::Pow10(k) => div_pow5_big(n, k) * pow2_neg(k),
    }
}

/// `sec + frac / units` as Python computes it for pcap and snoop records.
#[inline]
pub fn sec_frac(sec: u32, frac: u32, units: u32) -> f64 {
    f64::from(sec) + f64::from(frac) / f64::from(units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_quotients() {
        assert_eq!(div_ticks(1_500_000, Units::Pow10(6)), 1.5);
        assert_eq!(div_ticks(3, Units::Pow2(1)), 1.5);
        assert_eq!(div_ticks(0, Units::Pow10(100)), 0.0);
        assert_eq!(div_ticks(u64::MAX, Units::Pow10(0)), 18446744073709551615.0);
        assert_eq!(div_ticks(10, Units::Pow10(1)), 1.0);
    }

    #[test]
    fn big_path_agrees_with_u128_path() {
        for &n in &[
            1u64,
            7,
            123456789,
            u64::MAX,
            1 << 63,
            999_999_999_999_999_999,
        ] {
            for k in 20..=27 {
                let a = div_u64(n, 5u64.pow(k));
                let b = div_pow5_big(n, k);
                assert_eq!(a.to_bits(), b.to_bits(), "n={n} k={k}");
            }
        }
    }

    /// Quotients Python computed with `n / 10**res` (or `2**(res & 0x7f)`), chosen where
    /// dividing the rounded doubles gives another answer.
    #[test]
    fn python_quotients() {
        let cases: &[(u64, u32, u64)] = &[
            (16905206735679349156, 9, 0x420f7d07de7d6f4f),
            (16773747655051246117, 9, 0x420f3e589e3868f4),
            (3546061507529612595, 9, 0x41ea6b935870f296),
            (2949417006658772305, 19, 0x3fd2e05327a58a44),
            (14398878655702884511, 22, 0x3f579753d2b8d69a),
            (15201201540689846990, 25, 0x3eb980ddc8f6c67e),
            (4979144234076680544, 30, 0x3d95e6049d91826d),
            (10980199304320652694, 127, 0x2984a145e0d23992),
            (3884275939109427331, 168, 0x414af3dc31841b6c),
            (14593771363482631015, 0, 0x43e950efb77cb4cf),
        ];
        for &(n, res, bits) in cases {
            let units = if res & 0x80 != 0 {
                Units::Pow2(res & 0x7F)
            } else {
                Units::Pow10(res)
            };
            assert_eq!(div_ticks(n, units).to_bits(), bits, "n={n} res={res}");
        }
    }
}
