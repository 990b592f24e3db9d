//! Panic-free byte access with Python's slicing semantics, and packed IP addresses.
//!
//! Every read of packet bytes goes through these helpers: an index past the end reads as 0
//! (the callers check lengths first, exactly where the Python reference does, so that value
//! is never used), and [`sl`] clamps like `d[a:b]`.

/// `d[a:b]` as Python slices it (clamped to the length, empty when `b < a`).
#[inline]
pub fn sl(d: &[u8], a: usize, b: usize) -> &[u8] {
    let n = d.len();
    let a = a.min(n);
    let b = b.min(n);
    if b <= a {
        return &[];
    }
    d.get(a..b).unwrap_or(&[])
}

#[inline]
pub fn u8_at(d: &[u8], i: usize) -> u8 {
    d.get(i).copied().unwrap_or(0)
}

#[inline]
pub fn u16_at(d: &[u8], i: usize) -> u16 {
    match d.get(i..i.wrapping_add(2)) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

#[inline]
pub fn u24_at(d: &[u8], i: usize) -> u32 {
    match d.get(i..i.wrapping_add(3)) {
        Some(&[a, b, c]) => u32::from_be_bytes([0, a, b, c]),
        _ => 0,
    }
}

#[inline]
pub fn u32_at(d: &[u8], i: usize) -> u32 {
    match d.get(i..i.wrapping_add(4)) {
        Some(&[a, b, c, e]) => u32::from_be_bytes([a, b, c, e]),
        _ => 0,
    }
}

/// A packed IPv4 (4 bytes) or IPv6 (16 bytes) address, `Copy` and hashable (the unused tail
/// is always zero, so equality is that of the Python `bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Addr {
    len: u8,
    b: [u8; 16],
}

impl Addr {
    /// The address in `s` (at most 16 bytes are kept; callers pass 4 or 16).
    #[inline]
    pub fn from_slice(s: &[u8]) -> Addr {
        let mut b = [0u8; 16];
        let len = s.len().min(16);
        if let (Some(dst), Some(src)) = (b.get_mut(..len), s.get(..len)) {
            dst.copy_from_slice(src);
        }
        Addr { len: len as u8, b }
    }

    /// `len` bytes of `d` at `off` (zeros past the end: callers checked the length).
    #[inline]
    pub fn at(d: &[u8], off: usize, len: usize) -> Addr {
        match d.get(off..off.wrapping_add(len)) {
            Some(s) => Addr::from_slice(s),
            None => Addr {
                len: len as u8,
                b: [0; 16],
            },
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        self.b.get(..self.len as usize).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_slicing() {
        let d = [1u8, 2, 3, 4];
        assert_eq!(sl(&d, 1, 3), &[2, 3]);
        assert_eq!(sl(&d, 3, 1), &[] as &[u8]);
        assert_eq!(sl(&d, 2, 99), &[3, 4]);
        assert_eq!(sl(&d, 9, 99), &[] as &[u8]);
        assert_eq!(u16_at(&d, 3), 0);
        assert_eq!(u32_at(&d, usize::MAX), 0);
        assert_eq!(Addr::at(&d, 0, 4).as_slice(), &d);
    }
}
