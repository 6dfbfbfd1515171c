//! k·G, the one point multiplication a card does per signature (and per generated key).
//!
//! p256 0.13 multiplies the generator like any point: 256 doublings and 64 additions
//! (primeorder carries a "TODO: precomputed basepoint tables"). With `std`, this module keeps
//! a table of the generator's multiples, built once per process: the k·G of a signature is
//! then 64 mixed additions and no doubling, which makes a signature about three times faster.
//! Without `std` (firmware, where 72 KB of RAM for a table is too much) it is p256's own.
//!
//! Written here because no well-kept P-256 crate has a fixed-base table for secret scalars.
//! It uses only p256's group operations, which are constant time (complete addition formulas
//! that also take the identity), and it reads every table entry of a window for each digit,
//! so neither time nor memory access depends on the scalar.

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
    use p256::elliptic_curve::group::Curve;
    use p256::elliptic_curve::PrimeField;
    use p256::{AffinePoint, ProjectivePoint, Scalar};
    use std::sync::OnceLock;
    use subtle::{ConditionallySelectable, ConstantTimeEq};

    /// 4-bit digits of a 256-bit scalar.
    const WINDOWS: usize = 64;

    /// `TABLE[w][d]` = d·16^w·G.
    type Table = [[AffinePoint; 16]; WINDOWS];

    static TABLE: OnceLock<Box<Table>> = OnceLock::new();

    fn build() -> Box<Table> {
        let mut points = Vec::with_capacity(WINDOWS * 16);
        let mut base = ProjectivePoint::GENERATOR;
        for _ in 0..WINDOWS {
            let mut multiple = ProjectivePoint::IDENTITY;
            for _ in 0..16 {
                points.push(multiple);
                multiple += base;
            }
            // Sixteen additions of base: the next window's base.
            base = multiple;
        }
        let mut affine = vec![AffinePoint::IDENTITY; points.len()];
        ProjectivePoint::batch_normalize(&points, &mut affine);
        let mut table = Box::new([[AffinePoint::IDENTITY; 16]; WINDOWS]);
        for (row, chunk) in table.iter_mut().zip(affine.chunks_exact(16)) {
            row.copy_from_slice(chunk);
        }
        table
    }

    pub(super) fn mul(k: &Scalar) -> ProjectivePoint {
        let table = TABLE.get_or_init(build);
        // Big-endian bytes: window w is the low (even w) or high nibble of byte 31 - w/2.
        let bytes = k.to_repr();
        let mut sum = ProjectivePoint::IDENTITY;
        for (w, row) in table.iter().enumerate() {
            let byte = bytes[31 - w / 2];
            let digit = if w % 2 == 0 { byte & 0x0f } else { byte >> 4 };
            let mut entry = AffinePoint::IDENTITY;
            for (d, point) in row.iter().enumerate() {
                entry.conditional_assign(point, digit.ct_eq(&(d as u8)));
            }
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
