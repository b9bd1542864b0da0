//! The scalar type the reference engine is generic over: `f32` for checking the SIMD engine
//! at its own precision, `f64` for the finite-difference oracle.

use core::fmt::Debug;
use core::ops::{Add, AddAssign, Div, Mul, Neg, Sub, SubAssign};

/// A real number as the reference engine needs it: field operations and the handful of
/// transcendental functions of the model, all from the standard library (the gated cells'
/// sigmoid is built from `exp`).
pub trait Real:
    Copy
    + Debug
    + Default
    + PartialOrd
    + Send
    + Sync
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    #[must_use]
    fn from_f64(v: f64) -> Self;
    #[must_use]
    fn to_f64(self) -> f64;
    #[must_use]
    fn tanh(self) -> Self;
    #[must_use]
    fn exp(self) -> Self;
    #[must_use]
    fn ln(self) -> Self;
    #[must_use]
    fn sqrt(self) -> Self;
    #[must_use]
    fn max(self, other: Self) -> Self;
    /// The logistic function `1 / (1 + e^-x)`, computed without overflow: for `x < 0` as
    /// `e^x / (1 + e^x)` (where `e^-x` could overflow to infinity). Both branches round to
    /// within a few ulp, and for `|x| > 40` (f64) the result is exactly 1 or below `e^-40`.
    #[must_use]
    fn sigmoid(self) -> Self {
        if self >= Self::ZERO {
            Self::ONE / (Self::ONE + (-self).exp())
        } else {
            let e = self.exp();
            e / (Self::ONE + e)
        }
    }
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
        }
    };
}
impl_real!(f32);
impl_real!(f64);
