//! k·G, the one point multiplication a card does per signature (and per generated key).
//!
//! p256 0.13 multiplies the generator like any point: 256 doublings and 64 additions
//! (primeorder carries a "TODO: precomputed basepoint tables"). With `std`, this module keeps
//! a table of the generator's multiples, built once per process: k is cut into 52 signed 5-bit
//! digits, and k·G is 52 mixed additions of table entries and no doubling, which makes a
//! signature about three times faster. Without `std` (firmware, where 60 KB of RAM for a
//! table is too much) it is p256's own.
//!
//! Written here because no well-kept P-256 crate has a fixed-base table for secret scalars.
//! It uses only p256's group operations, which are constant time (complete addition formulas
//! that also take the identity), it reads every table entry of a window for each digit and
//! negates by selection, and the digits are recoded without branches, so neither time nor
//! memory access depends on the scalar.

use p256::{ProjectivePoint, Scalar};

/// `k`·G.
pub(crate) fn mul(k: &Scalar) -> ProjectivePoint {
    #[cfg(feature = "std")]
    {
        table::mul(k)
    }
    #[cfg(not(feature = "std"))]
    {
        use p256::elliptic_curve::ops::MulByGenerator;
        ProjectivePoint::mul_by_generator(k)
    }
}

#[cfg(feature = "std")]
mod table {
    use p256::elliptic_curve::group::{Curve, Group};
    use p256::elliptic_curve::PrimeField;
    use p256::{AffinePoint, ProjectivePoint, Scalar};
    use std::sync::OnceLock;
    use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

    /// Signed 5-bit digits of a scalar below 2^256: 52 windows (260 bits); the top window holds
    /// bit 255 and a carry, so it never carries out.
    const WINDOWS: usize = 52;

    /// `TABLE[w][j]` = (j + 1)·32^w·G: the magnitudes 1 to 16 a digit can have.
    type Table = [[AffinePoint; 16]; WINDOWS];

    static TABLE: OnceLock<Box<Table>> = OnceLock::new();

    fn build() -> Box<Table> {
        let mut points = Vec::with_capacity(WINDOWS * 16);
        let mut base = ProjectivePoint::GENERATOR;
        for _ in 0..WINDOWS {
            let mut multiple = base;
            for _ in 0..16 {
                points.push(multiple);
                multiple += base;
            }
            // 17·base now; the next window's base is 32·base.
            base = base.double().double().double().double().double();
        }
        let mut affine = vec![AffinePoint::IDENTITY; points.len()];
        ProjectivePoint::batch_normalize(&points, &mut affine);
        let mut table = Box::new([[AffinePoint::IDENTITY; 16]; WINDOWS]);
        for (row, chunk) in table.iter_mut().zip(affine.chunks_exact(16)) {
            row.copy_from_slice(chunk);
        }
        table
    }

    /// Bits `at..at + 5` of the little-endian scalar `k` (zero past its end).
    fn bits5(k: &[u8; 32], at: usize) -> u32 {
        let byte = |i: usize| if i < 32 { k[i] as u32 } else { 0 };
        ((byte(at / 8) | (byte(at / 8 + 1) << 8)) >> (at % 8)) & 0x1f
    }

    pub(super) fn mul(k: &Scalar) -> ProjectivePoint {
        let table = TABLE.get_or_init(build);
        let mut le: [u8; 32] = k.to_repr().into();
        le.reverse();
        let mut sum = ProjectivePoint::IDENTITY;
        let mut carry = 0u32;
        for (w, row) in table.iter().enumerate() {
            // Digit in -16..=15 without branches: v in 0..=32; v >= 16 means v - 32, carry 1.
            let v = bits5(&le, 5 * w) + carry;
            carry = (v + 16) >> 5;
            let negative = Choice::from(carry as u8);
            // |digit|: v when v < 16, else 32 - v.
            let magnitude = u32::conditional_select(&v, &(32 - v), negative);
            let mut entry = AffinePoint::IDENTITY;
            for (j, point) in row.iter().enumerate() {
                entry.conditional_assign(point, magnitude.ct_eq(&(j as u32 + 1)));
            }
            let negated = -entry;
            entry.conditional_assign(&negated, negative);
            sum += &entry;
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::ops::Reduce;
    use p256::elliptic_curve::Field;
    use p256::U256;

    fn from_hex(h: &str) -> Scalar {
        <Scalar as Reduce<U256>>::reduce(U256::from_be_hex(h))
    }

    #[test]
    fn agrees_with_p256_on_edges_and_random_scalars() {
        let n_minus_1 = -Scalar::ONE;
        let edges = [
            Scalar::ZERO,
            Scalar::ONE,
            Scalar::from(15u64),
            Scalar::from(16u64),
            n_minus_1,
            n_minus_1 - Scalar::ONE,
            from_hex("8000000000000000000000000000000000000000000000000000000000000000"),
            from_hex("0fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
            from_hex("f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0"),
        ];
        let mut rng = rand_core::OsRng;
        let random: Vec<Scalar> = (0..64).map(|_| Scalar::random(&mut rng)).collect();
        for k in edges.iter().chain(&random) {
            assert_eq!(mul(k), ProjectivePoint::GENERATOR * k, "k = {:?}", k);
        }
    }
}
